#!/usr/bin/env node
// @ts-check
// `npm run release:pack`: assembles what gets published, from the addons
// `npm run build:targets` left in target/artifacts/ and the built dist/:
//
//   target/npm/<platform>/   one package per target, @xen-domain-build/<platform>:
//                            the addon and the domain builder (xen-domain-builder,
//                            executable; defaultXenguestPath() finds it beside the
//                            package.json), with os/cpu/libc so npm installs only
//                            the one that fits (napi-rs's per-platform package layout)
//   target/npm/main/         the main package: the files package.json's `files`
//                            names, and a package.json with the four platform
//                            packages as optionalDependencies at this exact version
//                            and without the scripts and devDependencies of a checkout
//   target/npm/tarballs/     `npm pack` of each, which `npm run release:check`
//                            dry-run publishes and installs, and CI publishes.
//
// The optionalDependencies are added here, not in the repository's package.json:
// in a checkout the addon is built from source, and npm ci would otherwise need
// platform packages of a version that is not published yet.
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const ARTIFACTS = join(ROOT, 'target', 'artifacts')
const NPM = join(ROOT, 'target', 'npm')
const TARBALLS = join(NPM, 'tarballs')
const { BINARY_NAME, BUILDER_NAME, PLATFORM_SCOPE } = createRequire(import.meta.url)('./platform.cjs')

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const NODE_ARCH = { x86_64: 'x64', aarch64: 'arm64' }
const LIBC = { gnu: 'glibc', musl: 'musl' }

/** napi's names for a Rust triple: `x86_64-unknown-linux-gnu` → linux, x64, gnu. */
function describe(triple) {
  const [arch, , os, abi] = triple.split('-')
  return { triple, os, cpu: NODE_ARCH[arch], abi, platform: `${os}-${NODE_ARCH[arch]}-${abi}` }
}

function npm(args, cwd) {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
}

const targets = pkg.napi.targets.map(describe)
const missing = targets.filter(
  (t) => !existsSync(join(ARTIFACTS, `${BINARY_NAME}.${t.platform}.node`)) || !existsSync(join(ARTIFACTS, `${BUILDER_NAME}.${t.platform}`)),
)
if (missing.length) {
  console.error(
    `release-pack: no addon or ${BUILDER_NAME} for ${missing.map((t) => t.platform).join(', ')} in target/artifacts/: run npm run build:targets`,
  )
  process.exit(1)
}
for (const file of ['dist/index.js', 'dist/cli.js', 'dist/index.d.ts', 'native/binding.d.ts']) {
  if (!existsSync(join(ROOT, file))) {
    console.error(`release-pack: ${file} is missing: run npm run build`)
    process.exit(1)
  }
}

rmSync(NPM, { recursive: true, force: true })
mkdirSync(TARBALLS, { recursive: true })
// What users see of the project, on every package.
const META = ['license', 'author', 'homepage', 'repository', 'bugs', 'engines', 'publishConfig']
const pick = (keys) => Object.fromEntries(keys.filter((k) => pkg[k] !== undefined).map((k) => [k, pkg[k]]))

for (const t of targets) {
  const dir = join(NPM, t.platform)
  const addon = `${BINARY_NAME}.${t.platform}.node`
  mkdirSync(dir, { recursive: true })
  const manifest = {
    name: `${PLATFORM_SCOPE}/${t.platform}`,
    version: pkg.version,
    description: `The ${t.triple} addon and domain builder of ${pkg.name}, installed by it as an optional dependency`,
    main: addon,
    files: [addon, BUILDER_NAME],
    os: [t.os],
    cpu: [t.cpu],
    libc: [LIBC[t.abi]],
    ...pick(META),
  }
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  writeFileSync(
    join(dir, 'README.md'),
    `# \`${manifest.name}\`\n\nThe **${t.triple}** build of [\`${pkg.name}\`](${pkg.homepage})'s native addon, and of its domain builder \`${BUILDER_NAME}\`.\nInstall \`${pkg.name}\`, which depends on it; npm picks the package that fits the machine.\n`,
  )
  copyFileSync(join(ROOT, 'LICENSE'), join(dir, 'LICENSE'))
  copyFileSync(join(ARTIFACTS, addon), join(dir, addon))
  // npm pack keeps the mode: installed, it must still be a program SpawnedXenguest can start.
  copyFileSync(join(ARTIFACTS, `${BUILDER_NAME}.${t.platform}`), join(dir, BUILDER_NAME))
  chmodSync(join(dir, BUILDER_NAME), 0o755)
}

// The main package: exactly the files npm would pack from the checkout.
const main = join(NPM, 'main')
const listed = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT))[0].files.map((f) => f.path)
for (const file of listed) cpSync(join(ROOT, file), join(main, file))
const { scripts, devDependencies, napi, ...published } = pkg
published.optionalDependencies = Object.fromEntries(targets.map((t) => [`${PLATFORM_SCOPE}/${t.platform}`, pkg.version]))
writeFileSync(join(main, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)

for (const dir of [main, ...targets.map((t) => join(NPM, t.platform))]) {
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', TARBALLS], dir))
  console.log(
    `${packed.name}@${packed.version}: ${packed.filename}, ${(packed.size / 1024).toFixed(1)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${packed.entryCount} files`,
  )
}
