'use strict';

// The repository's own bpmnlint rules, enabled in .bpmnlintrc by "plugin:usm/recommended" and reported
// as usm/<rule>. Advice only: every rule here is a warning, and `npm run lint` fails on errors alone.
module.exports = {
  configs: {
    recommended: {
      rules: {
        'readable-ids': 'warn'
      }
    }
  },
  rules: {
    'readable-ids': './rules/readable-ids'
  }
};
