import { describe, expect, it } from 'vitest';
import { addCounts, countModules, formatSummary, type ModuleLike } from './summary.js';

function mod(states: string[], moduleState = 'passed', errors: unknown[] = []): ModuleLike {
  return {
    state: () => moduleState,
    errors: () => errors,
    children: { allTests: () => states.map((state) => ({ result: () => ({ state }) })) },
  };
}

describe('test summary reporter', () => {
  it('counts passed, failed and skipped tests over all files', () => {
    const c = countModules([mod(['passed', 'passed', 'skipped']), mod(['failed', 'passed'], 'failed')], 0);
    expect(c).toEqual({ passed: 3, failed: 1, skipped: 1 });
  });

  it('counts a file that failed to load, a failing hook and unhandled errors as failures', () => {
    expect(countModules([mod([], 'failed', [new Error('syntax')])], 0).failed).toBe(1);
    expect(countModules([mod(['passed'], 'failed')], 0)).toEqual({ passed: 1, failed: 1, skipped: 0 });
    expect(countModules([mod(['passed'])], 2).failed).toBe(2);
    // a test still pending when the run ended did not pass
    expect(countModules([mod(['pending'])], 0).failed).toBe(1);
  });

  it('prints the closing line in the one form CI reads', () => {
    const total = addCounts({ passed: 1, failed: 0, skipped: 2 }, { passed: 3, failed: 4, skipped: 0 });
    expect(formatSummary(total)).toBe('tests: 4 passed, 4 failed, 2 skipped');
  });
});
