#!/usr/bin/env node
// @ts-check
// Debian 13's libxen-dev (Xen 4.20's headers), downloaded with a private apt
// state and unpacked (not installed) into target/xen-headers/4.20, for the
// layout test that compiles against them (crates/c-probe/tests/headers.rs).
// The installed libxen-dev (Debian 12's, 4.17) is the other one it checks.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { download, trixieApt } from './debian-apt.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(ROOT, 'target', 'xen-headers', '4.20')
if (!existsSync(join(OUT, '.complete'))) {
  const apt = trixieApt(join(ROOT, 'target', 'trixie-apt'))
  const debs = join(ROOT, 'target', 'xen-headers', 'debs')
  const [deb] = download(apt, debs, ['libxen-dev']).filter((f) => f.startsWith('libxen-dev_'))
  if (!deb?.includes('4.20')) throw new Error(`trixie's libxen-dev is not Xen 4.20's: ${deb}`)
  rmSync(OUT, { recursive: true, force: true })
  mkdirSync(OUT, { recursive: true })
  const unpack = spawnSync('dpkg-deb', ['-x', join(debs, deb), OUT], { stdio: 'inherit' })
  if (unpack.status !== 0) throw new Error(`dpkg-deb -x ${deb} failed`)
  writeFileSync(join(OUT, '.complete'), `${deb}\n`)
  process.stderr.write(`xen-headers: ${deb} unpacked into ${OUT}\n`)
}
