import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { cli, sharedData } from './helpers.js'

describe('xen-domain-build plan', () => {
  for (const name of ['small', 'tiebreak']) {
    it(`plays ${name}.json exactly as xenopsd decided`, () => {
      const run = cli(['plan', '--scenario', sharedData('placement', `${name}.json`)])
      expect(run.stderr).toBe('')
      expect(run.status).toBe(0)
      const expected = readFileSync(sharedData('placement', `${name}.expected.jsonl`), 'utf8')
      expect(run.stdout.trimEnd().split('\n')).toEqual(expected.trimEnd().split('\n'))
    })
  }

  it('reads the scenario from standard input with -', () => {
    const text = readFileSync(sharedData('placement', 'tiebreak.json'), 'utf8')
    const run = cli(['plan', '--scenario', '-'], text)
    expect(run.status).toBe(0)
    expect(run.stdout).toBe(readFileSync(sharedData('placement', 'tiebreak.expected.jsonl'), 'utf8').trimEnd() + '\n')
  })

  it('plans VMs on a preset host', () => {
    const run = cli(['plan', '--sim', 'two-socket-4-node', '--vcpus', '4', '--memory-mib', '20480', '--vms', '2', '--json'])
    expect(run.status).toBe(0)
    // 20 GiB is more than one 16 GiB node: each VM gets a socket's two nodes.
    expect(run.stdout.trim().split('\n').map((l) => JSON.parse(l).nodes)).toEqual([[0, 1], [2, 3]])
  })

  it('gives one clear line and exit code 2 for bad input', () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [['plan', '--scenario', '/nonexistent.json'], undefined, /cannot read \/nonexistent.json/],
      [['plan', '--scenario', '-'], 'not json', /stdin: not JSON/],
      [['plan', '--scenario', '-'], '{"distances": [[10]], "cpu_to_node": [0], "node_cores": [1], "node_free": [1], "requests": [{"memory": -1, "vcpus": 1, "cores": 0}]}', /request.memoryBytes/],
      [['plan', '--scenario', '-'], '{"distances": [[10]], "cpu_to_node": [0], "node_cores": [1], "node_free": [1], "requests": [{"vcpus": 1}]}', /stdin.requests\[0\].memory: expected a number/],
      [['plan', '--sim', 'nope', '--vcpus', '1', '--memory-mib', '1'], undefined, /unknown host nope/],
      [['plan', '--sim', 'two-socket-4-node', '--vcpus', 'x', '--memory-mib', '1'], undefined, /--vcpus: x is not a whole number/],
      [['plan', '--frobnicate'], undefined, /Unknown option '--frobnicate'/],
      [['frobnicate'], undefined, /unknown command frobnicate/],
    ]
    for (const [args, input, message] of cases) {
      const run = cli(args, input)
      expect(run.status, args.join(' ')).toBe(2)
      expect(run.stderr, args.join(' ')).toMatch(message)
      expect(run.stderr, args.join(' ')).not.toMatch(/\n\s+at /)
    }
  })

  it('prints help', () => {
    const run = cli(['plan', '--help'])
    expect(run.status).toBe(0)
    expect(run.stdout).toContain('--scenario FILE|-')
  })
})
