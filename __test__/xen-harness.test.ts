// The real-Xen harness's account of a boot that did not finish
// (scripts/xen-test/diagnose.mjs): where it was, hang or slowness, the console's end.
import { describe, expect, it } from 'vitest'
import { diagnose, tail, whereItWas } from '../scripts/xen-test/diagnose.mjs'

const XEN_ONLY = '(XEN) Xen version 4.20.4\n(XEN) Scrubbing Free RAM in background\n'
const KERNEL = `${XEN_ONLY}[    0.000000] Linux version 6.12.118+deb13-amd64\n`
const DOM0_UP = `${KERNEL}xen-test: dom0 up, running the tests\n`
const IN_BUILDER = `${DOM0_UP}xen-test: rust started\nxen-test: rust exited 0 after 40 s\nxen-test: builder started\n\x1b[0m  building...\r\n`

describe('test:xen diagnostics', () => {
  it('says which phase a boot was in', () => {
    expect(whereItWas(XEN_ONLY)).toMatchObject({ phase: "Xen (dom0's kernel never started)", dom0: false })
    expect(whereItWas(KERNEL).phase).toMatch(/dom0 kernel booting/)
    expect(whereItWas(DOM0_UP)).toMatchObject({ phase: 'dom0 up, before the first suite', dom0: true })
    expect(whereItWas(IN_BUILDER)).toMatchObject({ phase: 'suite builder', suite: 'builder', dom0: true })
    expect(whereItWas(`${DOM0_UP}xen-test: rust started\nxen-test: rust exited 1 after 3 s\n`).phase).toBe('between suites (after rust)')
    // init reaches "done" even when the share never mounted.
    expect(whereItWas(`${DOM0_UP}sh: can't open '/mnt/host/run.sh'\nxen-test: done, resetting\n`).phase).toBe(
      'dom0, which ran none of the suites (is the share mounted?)',
    )
  })

  it('tells a hang from slowness by how long the console was quiet before the kill', () => {
    const boot = { log: IN_BUILDER, killed: true, code: null, signal: 'SIGKILL', seconds: 600, quietSeconds: 300 }
    expect(diagnose(boot, 600)).toBe(
      'dom0 did not finish: QEMU ran past its limit (600 s) and was killed, in suite builder; dom0 had booted; a hang: nothing on the console for the last 300 s.',
    )
    expect(diagnose({ ...boot, quietSeconds: 2 }, 600)).toMatch(/slowness, not a hang: the console was still moving 2 s before the kill/)
    expect(diagnose({ ...boot, log: XEN_ONLY, killed: false, code: 0, signal: null, seconds: 12 }, 600)).toBe(
      "dom0 did not finish: QEMU exited on its own after 12 s (status 0), in Xen (dom0's kernel never started); dom0 had not booted; the machine stopped: a crash or a reset, see the console.",
    )
  })

  it("keeps the console's last lines, without escape codes or blank lines", () => {
    expect(tail(IN_BUILDER, 2)).toEqual(['xen-test: builder started', '  building...'])
  })
})
