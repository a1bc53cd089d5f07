import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli, readJson, ROOT, sharedData } from './helpers.js'

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
    expect(run.stdout).toBe(`${readFileSync(sharedData('placement', 'tiebreak.expected.jsonl'), 'utf8').trimEnd()}\n`)
  })

  it('plans VMs on a preset host', () => {
    const run = cli(['plan', '--sim', 'two-socket-4-node', '--vcpus', '4', '--memory-mib', '20480', '--vms', '2', '--json'])
    expect(run.status).toBe(0)
    // 20 GiB is more than one 16 GiB node: each VM gets a socket's two nodes.
    expect(
      run.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).nodes),
    ).toEqual([
      [0, 1],
      [2, 3],
    ])
  })

  it('gives one clear line and exit code 2 for bad input', () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [['plan', '--scenario', '/nonexistent.json'], undefined, /cannot read \/nonexistent.json/],
      [['plan', '--scenario', '-'], 'not json', /stdin: not JSON/],
      [
        ['plan', '--scenario', '-'],
        '{"distances": [[10]], "cpu_to_node": [0], "node_cores": [1], "node_free": [1], "requests": [{"memory": -1, "vcpus": 1, "cores": 0}]}',
        /request.memoryBytes/,
      ],
      [
        ['plan', '--scenario', '-'],
        '{"distances": [[10]], "cpu_to_node": [0], "node_cores": [1], "node_free": [1], "requests": [{"vcpus": 1}]}',
        /stdin.requests\[0\].memory: expected a number/,
      ],
      [['plan', '--sim', 'nope', '--vcpus', '1', '--memory-mib', '1'], undefined, /unknown host nope/],
      [['plan', '--sim', 'two-socket-4-node', '--vcpus', 'x', '--memory-mib', '1'], undefined, /--vcpus: x is not a whole number/],
      [['plan', '--frobnicate'], undefined, /Unknown option '--frobnicate'/],
      [['frobnicate'], undefined, /unknown command "frobnicate" \(see xen-domain-build --help\)/],
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

describe('xen-domain-build build', () => {
  const vm = { type: 'hvm', staticMaxKib: 2 << 20, targetKib: 1 << 20, videoMib: 8, vcpus: 2, image: '/usr/lib/xen/boot/hvmloader' }

  it('creates and builds a domain on a simulated host, as JSON', () => {
    const run = cli(['build', '--sim', 'two-socket-4-node', '--config', '-', '--json'], JSON.stringify(vm))
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
    const built = JSON.parse(run.stdout)
    expect(built).toMatchObject({ domid: 1, storePort: 1, consolePort: 2, placement: { plan: [0], node: 0, claim: 'node' } })
    expect(built.memory.buildStartMib).toBe(1016)
    expect(built.xenstore['/local/domain/1/memory/static-max']).toBe(String(2 << 20))
    expect(built.xenstore['/libxl/1/type']).toBe('HVM')
    // The domain was made as xenopsd makes one: its VM's tree, and the key build_post follows to it.
    const vmPath = built.xenstore['/local/domain/1/vm']
    expect(vmPath).toMatch(/^\/vm\/[0-9a-f-]{36}$/)
    expect(built.xenstore[`${vmPath}/rtc/timeoffset`]).toBe('')
  })

  it("takes the new domain's uuid, name and platform keys from the config", () => {
    const uuid = '8a7c2d4e-1f3b-4a5c-9d6e-0b1c2d3e4f5a'
    const run = cli(
      ['build', '--sim', 'qemu-2-node', '--config', '-', '--json'],
      JSON.stringify({ ...vm, uuid, name: 'db', platform: { timer_mode: '1' } }),
    )
    expect(run.stderr).toBe('')
    const built = JSON.parse(run.stdout)
    expect(built.xenstore).toMatchObject({
      '/local/domain/1/vm': `/vm/${uuid}`,
      '/local/domain/1/name': 'db',
      '/local/domain/1/platform/timer_mode': '1',
      [`/vm/${uuid}/name`]: 'db',
    })
  })

  it('exits 1 with the failure when the build fails', () => {
    const run = cli(
      ['build', '--sim', 'qemu-2-node', '--config', '-'],
      JSON.stringify({ ...vm, staticMaxKib: 8 << 20, targetKib: 8 << 20 }),
    )
    expect(run.status).toBe(1)
    expect(run.stderr).toMatch(/^xen-domain-build: NOT_ENOUGH_MEMORY: domain 1: wait_for_memory: not enough free memory/)
  })

  it('exits 3 on a machine without Xen, whether it creates the domain or builds an existing one', () => {
    for (const args of [
      ['build', '--domid', '5', '--config', '-'],
      ['build', '--config', '-'],
    ]) {
      const run = cli(args, JSON.stringify(vm))
      expect(run.status).toBe(3)
      expect(run.stderr).toContain('XEN_UNAVAILABLE')
    }
  })

  it('refuses a bad config file with one line and exit code 2', () => {
    const cases: [string, RegExp][] = [
      ['{"type": "hvm"', /stdin: not JSON/],
      [JSON.stringify({ ...vm, vcpu: 2 }), /stdin: unknown key "vcpu" \(known: \$schema, type, /],
      [JSON.stringify({ ...vm, vcpus: 0 }), /stdin.vcpus: 0 is below 1/],
      [JSON.stringify({ ...vm, type: 'xen' }), /stdin.type: "xen" is not one of "hvm", "pv", "pvh"/],
      [JSON.stringify({ ...vm, hardAffinity: [[0, -1]] }), /stdin.hardAffinity\[0\]\[1\]: -1 is below 0/],
      [JSON.stringify({ ...vm, modules: [{ cmdline: 'x' }] }), /stdin.modules\[0\].path: is required/],
      [JSON.stringify({ ...vm, targetKib: 3 << 20 }), /vm.targetKib: .* is above staticMaxKib/],
      [JSON.stringify({ ...vm, image: 5 }), /stdin.image: expected a string, got integer/],
    ]
    for (const [config, message] of cases) {
      const run = cli(['build', '--sim', 'qemu-2-node', '--config', '-'], config)
      expect(run.status, config).toBe(2)
      expect(run.stderr, config).toMatch(message)
      expect(run.stderr.trim().split('\n'), config).toHaveLength(1)
    }
    expect(cli(['build', '--sim', 'qemu-2-node', '--domid', '1', '--config', '-'], '{}').stderr).toContain(
      '--sim and --domid exclude each other',
    )
  })
})

describe('every command', () => {
  it.each(['host', 'plan', 'build', 'storm'])('%s --help', (command) => {
    const run = cli([command, '--help'])
    expect(run.status).toBe(0)
    expect(run.stdout).toMatch(/^Usage:/)
  })

  it('no command prints the usage and exits 2', () => {
    const run = cli([])
    expect(run.status).toBe(2)
    expect(run.stdout).toContain('Exit codes: 0 success, 1 failure, 2 usage error or invalid input, 3 Xen unavailable')
  })
})

describe('xen-domain-build --version', () => {
  it("prints the package's version", () => {
    const { version } = readJson<{ version: string }>(join(ROOT, 'package.json'))
    for (const flag of ['--version', '-V']) {
      const run = cli([flag])
      expect(run.status).toBe(0)
      expect(run.stdout.trim()).toBe(version)
    }
  })
})

describe('a number on the command line', () => {
  it.each([
    [['storm', '--sim', 'qemu-2-node', '--vms', '-5'], '--vms: -5 is not a whole number'],
    [['plan', '--sim', 'qemu-2-node', '--vcpus', '-1', '--memory-mib', '1024'], '--vcpus: -1 is not a whole number'],
    [['storm', '--sim', 'qemu-2-node', '--vms', '4', '--load', '-0.5'], '--load: -0.5 is not a share from 0 to 1'],
  ])('that is negative is refused for what it is: %j', (args, message) => {
    const run = cli(args)
    expect(run.status).toBe(2)
    expect(run.stderr).toContain(message)
    expect(run.stderr).not.toContain('ambiguous')
  })
})

describe('xen-domain-build storm', () => {
  it('checks that --report can be written before it starts the storm', () => {
    const run = cli(['storm', '--sim', 'qemu-2-node', '--vms', '100000', '--report', '/nonexistent-dir/report.html'])
    expect(run.status).toBe(2)
    expect(run.stderr).toMatch(/^xen-domain-build: --report: cannot write \/nonexistent-dir\/report.html: ENOENT/)
    expect(run.stdout).toBe('')
  })

  it('has node claims as the preset has them, as simulateHost and build --sim do, unless told', () => {
    const title = (args: string[]) => cli(['storm', '--vms', '2', '--no-live', ...args]).stdout.split('\n')[0]
    expect(title(['--sim', 'two-socket-4-node'])).toContain('(node claims)')
    expect(title(['--sim', 'qemu-2-node'])).toContain('(no node claims)')
    expect(title(['--sim', 'two-socket-4-node', '--no-node-claims'])).toContain('(no node claims)')
    expect(title(['--sim', 'qemu-2-node', '--node-claims'])).toContain('(node claims)')
    const built = JSON.parse(
      cli(
        ['build', '--sim', 'two-socket-4-node', '--config', '-', '--json'],
        JSON.stringify({ type: 'hvm', staticMaxKib: 1 << 20, targetKib: 1 << 20, vcpus: 1, image: 'x' }),
      ).stdout,
    )
    expect(built.placement.claim).toBe('node')
  })

  it('says what an over-promised placement is', () => {
    expect(cli(['storm', '--help']).stdout).toMatch(
      /Over-promised placements: builds placed on a node where the memory\npromised to builds in flight and not yet populated, this one's included,\ncame to more than Xen reported free there/,
    )
  })
})
