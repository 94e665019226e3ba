"""The interfaces of usm-engine: the Flask HTTP API and the `usm` command line. Imports `engine`."""
