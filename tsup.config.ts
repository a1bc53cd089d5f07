import { defineConfig } from 'tsup'

// One build, CommonJS. The ESM entry (esm/index.mjs, committed) re-exports it
// rather than being a second bundle, so `import` and `require` get the same
// module instance: one XenDomainBuildError class (instanceof holds across
// both), one loaded addon, one set of module-level state.
export default defineConfig({
  // The library, the command line, and the tools' workloads for the benchmarks.
  entry: { index: 'ts/index.ts', cli: 'ts/tools/cli.ts', tools: 'ts/tools/index.ts' },
  format: ['cjs'],
  // The tools and the CLI use the library's chunk, not copies of it.
  splitting: true,
  dts: { entry: { index: 'ts/index.ts' } },
  target: 'node20',
  platform: 'node',
  // The loader stays a file of its own: it finds the addon beside it, in the
  // per-platform package, or where NAPI_RS_NATIVE_LIBRARY_PATH says.
  external: [/native\/binding/, /scripts\/platform/],
  shims: true,
  clean: true,
  // For debugging here; not published (package.json's files leave them out).
  sourcemap: true,
})
