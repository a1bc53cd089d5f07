import { defineConfig } from 'tsup'

export default defineConfig({
  // The library, the command line, and the tools' workloads for the benchmarks.
  entry: { index: 'ts/index.ts', cli: 'ts/tools/cli.ts', tools: 'ts/tools/index.ts' },
  format: ['esm', 'cjs'],
  outExtension: ({ format }) => ({ js: format === 'esm' ? '.mjs' : '.js' }),
  dts: { entry: { index: 'ts/index.ts' } },
  target: 'node20',
  platform: 'node',
  // The napi-generated loader stays a file of its own: it finds the addon
  // beside it or in the per-platform package at run time.
  external: [/native\/binding/, /scripts\/platform/],
  shims: true,
  clean: true,
  sourcemap: true,
})
