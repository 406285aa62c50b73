// Preloaded (NODE_OPTIONS=--require) into a proxy under test: on SIGUSR2 it runs two full
// collections and writes process.memoryUsage() to $HEAP_PROBE_FILE (replaced whole, with
// a count `n` that goes up by one per answer). RSS is a high-water mark: it remembers the
// busiest moment, not what is still held, so a leak test reads the heap and the Buffers
// still alive after a collection.
const { renameSync, writeFileSync } = require('node:fs');
const { setFlagsFromString } = require('node:v8');
const { runInNewContext } = require('node:vm');

const file = process.env.HEAP_PROBE_FILE;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
let n = 0;
process.on('SIGUSR2', () => {
  gc();
  gc();
  n += 1;
  writeFileSync(`${file}.tmp`, JSON.stringify({ n, ...process.memoryUsage() }));
  renameSync(`${file}.tmp`, file);
});
