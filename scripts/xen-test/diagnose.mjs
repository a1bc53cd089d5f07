// @ts-check
// What test-xen.mjs says about a boot that did not finish: where it was
// (from the markers init and run.sh print on the console), whether it looks
// like a hang or slowness, and the console's last lines.

/** How long without console output, before a kill, counts as a hang. */
export const HANG_QUIET_SECONDS = 120

/** The last `count` non-empty lines of a serial log, without the console's escape codes. */
export function tail(log, count) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's escapes are what it strips
  const escapes = /\x1b\[[0-9;?]*[A-Za-z]/g
  return log
    .replace(/\r/g, '')
    .replace(escapes, '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-count)
}

/**
 * Where a boot got to: Xen (no dom0 kernel yet), the dom0 kernel booting,
 * dom0 up, a suite running (`xen-test: NAME started` without its `exited`),
 * or done. `dom0`: whether dom0's init had started the tests.
 */
export function whereItWas(log) {
  const started = [...log.matchAll(/xen-test: (\S+) started/g)].map((m) => m[1])
  if (log.includes('xen-test: done')) {
    // init goes on to "done" even when run.sh could not start (no share).
    return started.length > 0
      ? { phase: 'done', dom0: true }
      : { phase: 'dom0, which ran none of the suites (is the share mounted?)', dom0: true }
  }
  const exited = [...log.matchAll(/xen-test: (\S+) exited/g)].map((m) => m[1])
  const running = started.find((name) => !exited.includes(name))
  if (running !== undefined) return { phase: `suite ${running}`, suite: running, dom0: true }
  if (log.includes('xen-test: dom0 up')) {
    return { phase: exited.length > 0 ? `between suites (after ${exited.at(-1)})` : 'dom0 up, before the first suite', dom0: true }
  }
  if (/Linux version/.test(log)) return { phase: 'the dom0 kernel booting (its init never started the tests)', dom0: false }
  return { phase: "Xen (dom0's kernel never started)", dom0: false }
}

/**
 * One line on a boot that did not finish. `boot`: { log, killed, code,
 * signal, seconds, quietSeconds } (quietSeconds: since the last console
 * output, at the end).
 */
export function diagnose(boot, limitSeconds) {
  const where = whereItWas(boot.log)
  if (where.phase === 'done') return 'dom0 finished, but some suites left no result: see the console.'
  const how = boot.killed
    ? `QEMU ran past its limit (${limitSeconds} s) and was killed`
    : `QEMU exited on its own after ${boot.seconds.toFixed(0)} s (${boot.signal ?? `status ${boot.code}`})`
  let verdict
  if (!boot.killed) verdict = 'the machine stopped: a crash or a reset, see the console'
  else if (boot.quietSeconds > HANG_QUIET_SECONDS) verdict = `a hang: nothing on the console for the last ${boot.quietSeconds.toFixed(0)} s`
  else
    verdict = `slowness, not a hang: the console was still moving ${boot.quietSeconds.toFixed(0)} s before the kill (a busy machine? raise XEN_TEST_TIME_LIMIT_MS)`
  return `dom0 did not finish: ${how}, in ${where.phase}; dom0 ${where.dom0 ? 'had booted' : 'had not booted'}; ${verdict}.`
}
