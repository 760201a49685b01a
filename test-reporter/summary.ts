// A vitest reporter that counts what a run did, for the one closing line of `make test`:
//   tests: N passed, N failed, N skipped
// vitest's own output stays as it is (this runs beside the default reporter). When
// TSNET_SUMMARY_FILE names a file, each run appends one line "PROJECTS PASSED FAILED SKIPPED" to
// it and scripts/run-tests.sh sums the lines over the projects; without it the line is printed.
// (TSNET_TEST_COUNTS, its earlier name, is still read.)
//
// Failures that are not a failed test still count, so a broken run can never look green: a test
// file that did not load, a failing beforeAll/afterAll, an unhandled error, a test left pending
// by an interrupted run each count as one failure.
import { appendFileSync } from 'node:fs';
import type { Reporter, TestModule, TestRunEndReason } from 'vitest/node';

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

export function formatSummary(c: Counts): string {
  return `tests: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`;
}

export function addCounts(a: Counts, b: Counts): Counts {
  return { passed: a.passed + b.passed, failed: a.failed + b.failed, skipped: a.skipped + b.skipped };
}

/** The subset of vitest's TestModule this reporter reads (kept small so tests can fake it). */
export interface ModuleLike {
  state(): string;
  errors(): readonly unknown[];
  children: { allTests(): Iterable<{ result(): { state: string } }> };
}

export function countModules(modules: readonly ModuleLike[], unhandledErrors: number): Counts {
  const c: Counts = { passed: 0, failed: unhandledErrors, skipped: 0 };
  for (const m of modules) {
    let failedHere = 0;
    for (const t of m.children.allTests()) {
      const state = t.result().state;
      if (state === 'passed') c.passed += 1;
      else if (state === 'skipped') c.skipped += 1;
      else failedHere += 1; // failed, or pending: the run ended before the test did
    }
    // a file that failed to load or a failing hook: no failed test shows it, so count it once
    if (failedHere === 0 && (m.state() === 'failed' || m.errors().length > 0)) failedHere = 1;
    c.failed += failedHere;
  }
  return c;
}

export default class SummaryReporter implements Reporter {
  private projects = new Set<string>();

  onTestModuleQueued(m: TestModule): void {
    this.projects.add(m.project.name || 'default');
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>, reason: TestRunEndReason): void {
    const counts = countModules(modules, unhandledErrors.length);
    if (reason === 'interrupted' && counts.failed === 0) counts.failed = 1;
    const out = process.env.TSNET_SUMMARY_FILE || process.env.TSNET_TEST_COUNTS;
    if (out) {
      const names = [...this.projects].join(',') || 'none';
      appendFileSync(out, `${names} ${counts.passed} ${counts.failed} ${counts.skipped}\n`);
    } else {
      console.log(formatSummary(counts));
    }
  }
}
