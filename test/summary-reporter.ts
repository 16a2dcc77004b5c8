/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, after vitest's own
 * summary, so that any log reader can count the run without parsing vitest's colours; and one
 * line of passed tests per backend, by the backend a test's suite or name names (`cpu`, `wasm`,
 * `webgpu`; the headless-Chromium suites count as `browser`; the rest as `other`).
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const byBackend: Record<string, number> = { cpu: 0, wasm: 0, webgpu: 0, browser: 0, other: 0 };
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') {
          const name = t.fullName;
          const backend = /Chromium/.test(name) ? 'browser' : (/\b(cpu|wasm|webgpu)\b/.exec(name)?.[1] ?? 'other');
          byBackend[backend]++;
        }
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else skipped++;
      }
      if (m.state() === 'failed' && ![...m.children.allTests()].length) failed++;
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    process.stdout.write(`passed by backend: ${Object.entries(byBackend).map(([b, n]) => `${b} ${n}`).join(', ')}\n`);
  }
}
