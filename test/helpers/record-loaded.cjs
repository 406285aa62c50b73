// Preloaded (NODE_OPTIONS=--require) into a proxy under test: appends the path of every
// CommonJS file it compiles to $LOADED_MODULES_FILE, however the file was reached (an ESM
// import of a CommonJS package compiles it through here too).
const { appendFileSync } = require('node:fs');
const Module = require('node:module');
const file = process.env.LOADED_MODULES_FILE;
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  if (file) appendFileSync(file, `${filename}\n`);
  return compile.call(this, content, filename);
};
