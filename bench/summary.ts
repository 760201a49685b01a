// The closing table of `make bench`: every benchmark's result lines (bench/lib.ts, report()),
// collected in the file $BENCH_RESULTS, as one table; benchmarks named on the command line failed
// and get a row saying so. Not a benchmark itself: the Makefile runs it last.
import { existsSync, readFileSync } from 'node:fs';
import { table, type BenchResult } from './lib.js';

const file = process.env.BENCH_RESULTS ?? '';
const failed = process.argv.slice(2);

const lines = file && existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()) : [];
const results: BenchResult[] = [];
for (const line of lines) {
  try {
    results.push(JSON.parse(line) as BenchResult);
  } catch {
    console.warn(`not a result line, skipped: ${line}`);
  }
}

const figure = (x: number | string | null, unit: string) => (x === null || x === '' ? '' : `${typeof x === 'number' ? x.toLocaleString('en-US', { maximumFractionDigits: 2 }) : x} ${unit}`.trim());
const met = (m: boolean | null) => (m === null ? '' : m ? 'met' : 'NOT MET');

const rows = results.map((r) => [r.bench, r.measure, figure(r.tsnet, r.unit), figure(r.peer, r.unit), r.ratio === null ? '' : r.ratio.toFixed(2), r.goal, met(r.met)]);
for (const name of failed) rows.push([name.replace(/^.*\//, '').replace(/\.js$/, ''), 'the benchmark failed (see its output above)', '', '', '', '', 'NOT MET']);

console.log('');
console.log(`=== all benchmarks (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`);
console.log(table(['benchmark', 'measure', 'tsnet', 'peer', 'ratio', 'goal', 'met'], rows));
const goals = results.filter((r) => r.met !== null);
console.log(`${goals.filter((r) => r.met).length} of ${goals.length + failed.length} goals met`);
