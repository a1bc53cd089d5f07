// @ts-check
// `npm run bench`: µs per NumaPlanner.plan call through N-API, and ms per
// planner construction, on the foundation issue's workload; with the ratios
// to xenopsd's own figures (target: at least 3x faster through JS).
import { createRequire } from 'node:module'
import { NumaPlanner } from '../esm/index.mjs'

const require = createRequire(import.meta.url)

const CALLS = 10_000
const ROUNDS = 5
const GIB = 1024 ** 3
const SIZES = [2, 4, 8, 16, 32]
const CLASSES = ['small', 'multi', 'unplaceable']
// xenopsd µs per plan call (small, multi, unplaceable) and ms per topology build.
const XENOPSD = [
  ['10/21', 8, [2.7, 38, 177, 0.33]],
  ['10/21', 16, [6.0, 366, 120_653, 282]],
  ['11/21', 16, [6.2, 93, 109_899, 282]],
]

function topology(matrix, nodes) {
  const half = Math.max(1, nodes / 2)
  const distances = Array.from({ length: nodes }, (_, i) =>
    Array.from({ length: nodes }, (_, j) => (i === j ? 10 : matrix === '11/21' && Math.floor(i / half) === Math.floor(j / half) ? 11 : 21)),
  )
  return {
    distances,
    cpuToNode: Array.from({ length: 4 * nodes }, (_, cpu) => Math.floor(cpu / 4)),
    nodeCores: Array(nodes).fill(2),
  }
}

function requests(kind) {
  let state = 0x2545f491n
  const next = (lo, hi) => {
    state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn
    return lo + Number((state >> 33n) % BigInt(hi - lo + 1))
  }
  return Array.from({ length: CALLS }, () =>
    kind === 'small'
      ? { memoryBytes: next(1, 32) * GIB, vcpus: next(1, 4), cores: 0 }
      : kind === 'multi'
        ? { memoryBytes: next(65, 190) * GIB, vcpus: next(5, 12), cores: 0 }
        : { memoryBytes: GIB, vcpus: 10_000, cores: 0 },
  )
}

/** The best of several rounds, in seconds per unit of work. */
function best(rounds, units, work) {
  let bestSeconds = Infinity
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint()
    work()
    bestSeconds = Math.min(bestSeconds, Number(process.hrtime.bigint() - start) / 1e9)
  }
  return bestSeconds / units
}

const results = new Map()
for (const matrix of ['10/21', '11/21']) {
  for (const nodes of SIZES) {
    const host = topology(matrix, nodes)
    const builds = nodes >= 16 ? 5 : 200
    results.set(
      `${matrix},${nodes},topology`,
      best(ROUNDS, builds, () => {
        for (let i = 0; i < builds; i++) new NumaPlanner(host)
      }),
    )
    const free = Array(nodes).fill(64 * GIB)
    for (const kind of CLASSES) {
      const planner = new NumaPlanner(host)
      const list = requests(kind)
      results.set(
        `${matrix},${nodes},${kind}`,
        best(ROUNDS, CALLS, () => {
          for (const request of list) planner.plan(request, free)
        }),
      )
    }
  }
}

// The floor: a method call into the addon that does nothing.
const nativePlanner = new (require('../native/binding.js').NativePlanner)(topology('10/21', 2))
const noop = best(ROUNDS, CALLS, () => {
  for (let i = 0; i < CALLS; i++) nativePlanner.noop()
})

const cell = (key, scale) => (results.has(key) ? (results.get(key) * scale).toFixed(3) : '-')
console.log(`NumaPlanner through N-API (µs per plan call, ${CALLS} calls per class; ms per planner built), best of ${ROUNDS}:`)
console.log('| matrix, nodes | small | multi | unplaceable | planner build |')
console.log('| --- | --- | --- | --- | --- |')
for (const matrix of ['10/21', '11/21']) {
  for (const nodes of SIZES) {
    const k = `${matrix},${nodes}`
    console.log(
      `| ${matrix}, ${nodes} | ${cell(`${k},small`, 1e6)} | ${cell(`${k},multi`, 1e6)} | ${cell(`${k},unplaceable`, 1e6)} | ${cell(`${k},topology`, 1e3)} |`,
    )
  }
}
console.log('\nspeed-up over xenopsd (its time / ours; target ≥ 3x through JS):')
console.log('| matrix, nodes | small | multi | unplaceable | planner build |')
console.log('| --- | --- | --- | --- | --- |')
for (const [matrix, nodes, theirs] of XENOPSD) {
  const k = `${matrix},${nodes}`
  const ratio = (what, i, scale) => `${(theirs[i] / (results.get(`${k},${what}`) * scale)).toFixed(0)}x`
  console.log(
    `| ${matrix}, ${nodes} | ${ratio('small', 0, 1e6)} | ${ratio('multi', 1, 1e6)} | ${ratio('unplaceable', 2, 1e6)} | ${ratio('topology', 3, 1e3)} |`,
  )
}

console.log(
  `\nthe crossing: a no-op method call into the addon takes ${(noop * 1e6).toFixed(3)} µs; a plan call (small) against it (target ≤ 1.5x):`,
)
console.log('| matrix, nodes | plan call | no-op call | ratio |')
console.log('| --- | --- | --- | --- |')
for (const nodes of SIZES) {
  const plan = results.get(`10/21,${nodes},small`)
  console.log(`| 10/21, ${nodes} | ${(plan * 1e6).toFixed(3)} µs | ${(noop * 1e6).toFixed(3)} µs | ${(plan / noop).toFixed(2)}x |`)
}
