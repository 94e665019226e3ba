#!/usr/bin/env node
// Saves every definition the way a modeler does, to show that the files in definitions/ are the source a
// process designer can open, edit and save: each .bpmn is read and written again by bpmn-moddle with the
// Camunda extension loaded (what bpmn-js, bpmn.io and Camunda Modeler do on save; camunda:* attributes
// are read as typed properties), each .dmn by dmn-moddle with camunda-dmn-moddle (what dmn-js does), and
// Camunda Modeler's stamp on <definitions> is added (exporter, execution platform). Any other file is
// copied unchanged, so the output folder deploys like the input one.
//
//   node tools/moddle_roundtrip.mjs [--plain] SOURCE_DIR OUTPUT_DIR
//
// --plain leaves out the stamp (moddle's fromXML/toXML only). Exits 1 naming every file that does not
// import cleanly: a parse error, or any import warning (an unknown element or attribute, an unresolved
// reference), which is what the modeler would drop or refuse. tests/definitions/test_roundtrip.py runs
// it on definitions/ and deploys and explores the result.

import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';

const require = createRequire(import.meta.url);
const { BpmnModdle } = require('bpmn-moddle');
const { DmnModdle } = require('dmn-moddle');
const camundaBpmn = require('camunda-bpmn-moddle/resources/camunda.json');
const camundaDmn = require('camunda-dmn-moddle/resources/camunda.json');

// What Camunda Modeler 5 writes on <definitions> when it saves a Camunda 7 diagram.
const MODELER_NS = 'http://camunda.org/schema/modeler/1.0';
const STAMP = {
  exporter: 'Camunda Modeler',
  exporterVersion: '5.31.0',
  executionPlatform: 'Camunda Platform',
  executionPlatformVersion: '7.22.0'
};

const MODDLES = {
  '.bpmn': () => new BpmnModdle({ camunda: camundaBpmn }),
  '.dmn': () => new DmnModdle({ camunda: camundaDmn })
};

async function* walk(folder) {
  const entries = await readdir(folder, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      yield* walk(path);
    } else if (entry.isFile()) {
      yield path;
    }
  }
}

function stamp(definitions, kind) {
  definitions.exporter = STAMP.exporter;
  definitions.exporterVersion = STAMP.exporterVersion;
  if (kind === '.bpmn') {
    definitions.$attrs['xmlns:modeler'] = MODELER_NS;
    definitions.$attrs['modeler:executionPlatform'] = STAMP.executionPlatform;
    definitions.$attrs['modeler:executionPlatformVersion'] = STAMP.executionPlatformVersion;
  }
}

function describe(problem) {
  const element = problem.element && problem.element.id ? ` (element ${problem.element.id})` : '';
  return problem.message.split('\n')[0] + element;
}

async function roundTrip(path, kind, plain) {
  const moddle = MODDLES[kind]();
  const xml = await readFile(path, 'utf8');
  let result;
  try {
    result = await moddle.fromXML(xml);
  } catch (error) {
    return { problems: [`parse error: ${describe(error)}`, ...(error.warnings || []).map(describe)] };
  }
  if (result.warnings.length) {
    return { problems: result.warnings.map(w => `import warning: ${describe(w)}`) };
  }
  if (!plain) {
    stamp(result.rootElement, kind);
  }
  const { xml: saved } = await moddle.toXML(result.rootElement, { format: true });
  return { xml: saved, problems: [] };
}

async function main(argv) {
  const plain = argv.includes('--plain');
  const [source, output] = argv.filter(a => a !== '--plain');
  if (!source || !output) {
    console.error('usage: node tools/moddle_roundtrip.mjs [--plain] SOURCE_DIR OUTPUT_DIR');
    return 2;
  }
  const failed = [];
  let saved = 0;
  let copied = 0;
  for await (const path of walk(source)) {
    const name = relative(source, path).split(sep).join('/');
    const target = join(output, name);
    await mkdir(dirname(target), { recursive: true });
    const kind = Object.keys(MODDLES).find(ext => name.endsWith(ext));
    if (!kind) {
      await copyFile(path, target);
      copied++;
      continue;
    }
    const { xml, problems } = await roundTrip(path, kind, plain);
    if (problems.length) {
      failed.push(name);
      for (const problem of problems) {
        console.error(`${name}: ${problem}`);
      }
      continue;
    }
    await writeFile(target, xml, 'utf8');
    saved++;
  }
  if (failed.length) {
    console.error(`${failed.length} file(s) do not survive a modeler's round trip: ${failed.join(', ')}`);
    return 1;
  }
  console.log(`${saved} diagram(s) saved as a modeler would, ${copied} other file(s) copied, into ${output}`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
