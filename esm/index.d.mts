// The types of esm/index.mjs: those of the CommonJS build it re-exports.
export * from '../dist/index.js'
