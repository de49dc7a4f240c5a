import { link, mkdir, readFile, symlink, writeFile as writeFileText } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inCliTerms } from '../../src/cli/format.ts'
import { TooManyOpenFilesError, tooManyOpenFiles } from '../../src/errors.ts'
import { encodeSwarmTicket } from '../../src/ticket/multi-ticket.ts'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { bin, events, Running, run } from './run.ts'

/** Every way the command line can be wrong, and the exit code and message each gets. */
describe('haul CLI errors and exit codes (real processes)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let src: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    src = join(dir, 'data.bin')
    await writeFile(src, 1024, 'random')
  })
  afterAll(() => cleanup())

  it('usage errors exit 2 with INVALID_ARGUMENT naming the flag, the value or what is missing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['send', src, '--bogus'], /unknown flag --bogus: see "haul send --help"/],
      [['get', 'haul1x', '--workers', '-1'], /--workers/],
      [['get', 'haul1x', '--workers', '0'], /--workers takes a positive whole number, got "0"/],
      [['send', src, '--memory', 'x'], /--memory takes a positive whole number, got "x"/],
      [['send', src, '--memory', '99999999999'], /--memory takes at most 8589934591 MiB, got "99999999999"/],
      // The engine's own checks, named by the flag.
      // A range in the flag's own unit, not the option's bytes.
      [['send', src, '--memory', '1'], /: --memory must be at least 4 \(MiB\), got 1$/m],
      [['get', 'haul1x', '--memory', '3'], /: --memory must be at least 4 \(MiB\), got 3$/m],
      [['send', src, '--listen', 'nowhere'], /--listen: .*nowhere/],
      // A multiaddr no transport of haul listens on: said before anything starts, with what works.
      [
        ['send', src, '--listen', '/ip4/127.0.0.1/udp/47123'],
        /--listen: .*udp\/47123" is not a TCP address: .*\/ip4\/0\.0\.0\.0\/tcp\/4001/,
      ],
      [['relay', '--listen', '/ip4/127.0.0.1/udp/47123'], /--listen: .*is not a TCP address/],
      [['send', src, '--chunking', 'fixed:3k'], /--chunking/],
      // Chunks a receiver's default frame limit cannot take are refused on the sender.
      [
        ['send', src, '--chunking', 'fixed:16m', '--memory', '64'],
        /--chunking: fixed:16m makes chunks of up to 16MiB; a haul receiver takes chunks of at most 8MiB/,
      ],
      [['index', src, '--chunking', 'cdc:4m'], /--chunking: cdc:4m makes chunks of up to 16MiB/],
      [
        ['send', src, '--chunking', 'fixed:8m'],
        /--memory: memoryBudget \(16MiB\) must hold at least 4 of the largest chunk \(8MiB\): give it 32MiB or more/,
      ],
      [['send', src, '--relay', '/ip4/127.0.0.1/tcp/4003'], /--relay: .*must end in \/p2p\/<relay peer id>/],
      [['relay', '--max-circuits', '0'], /--max-circuits takes a positive whole number/],
      [['relay', 'extra'], /haul relay takes no arguments/],
      [['relay', '--allow', 'notapeer'], /--allow takes a peer id \(12D3KooW…\), got "notapeer"/],
      [['get', 'haul1x', '--relay', '/ip4/127.0.0.1/tcp/4003'], /--relay is not an option of haul get/],
      [['get', 'haul1x', '--max-rate', 'foo'], /--max-rate takes bytes per second.*got "foo"/],
      [['get', 'haul1x', '--max-rate', '10MB'], /--max-rate .*ambiguous/],
      [['get', 'haul1x', '--max-rate', '0'], /--max-rate takes bytes per second/],
      [
        ['get', 'haul1x', '--max-rate', '-5'],
        /--max-rate needs a value; one that starts with "-" is written --max-rate=<value>/,
      ],
      [['get', 'haul1x', '--max-rate=-5'], /--max-rate takes bytes per second.*got "-5"/],
      [['get', 'haul1x', '--priority', 'urgent'], /--priority takes high, normal, low, got "urgent"/],
      [['send', src, '--upload-limit', 'fast'], /--upload-limit takes bytes per second/],
      [
        ['get', 'haul1x', '--out'],
        /^error \[INVALID_ARGUMENT\]: -o\/--out needs a value: see "haul get --help"/,
      ],
      [['get', 'haul1x', '--max-rate'], /: --max-rate needs a value: see "haul get --help"/],
      // An empty value (a variable that was not set) is no value, named as typed.
      [['get', 'haul1x', '-o', ''], /: -o\/--out needs a value, got an empty one: see "haul get --help"/],
      [['index', src, '--out='], /: -o\/--out needs a value, got an empty one: see "haul index --help"/],
      [
        ['loadtest', '--report', ''],
        /: --report needs a value, got an empty one: see "haul loadtest --help"/,
      ],
      // A flag of another command is refused, not ignored.
      [['send', src, '--force'], /--force is not an option of haul send/],
      [['index', src, '--listen', '/ip4/127.0.0.1/tcp/0'], /--listen is not an option of haul index/],
      [['get', 'haul1x', '--upload-limit', '1M'], /--upload-limit is not an option of haul get/],
      [['send', src, '--max-open-files', '0'], /--max-open-files takes a positive whole number, got "0"/],
      [['get', 'haul1x', '--max-open-files', 'many'], /--max-open-files takes a positive whole number/],
      [['index', src, '--max-open-files', '8'], /--max-open-files is not an option of haul index/],
      [['send'], /missing argument: haul send <file \| folder>/],
      [['get'], /missing argument: haul get <ticket>/],
      [['index'], /missing argument: haul index <file>/],
      [['seed'], /missing argument: haul seed <dest>/],
      [['send', src, src], /two of the paths given are named "data.bin"/],
      [['frobnicate'], /unknown command "frobnicate": try "haul --help"/],
      [['loadtest', '--bogus'], /unknown flag --bogus: see "haul loadtest --help"/],
      // The harness's options, checked before anything starts, named by their flags.
      [
        ['loadtest', '--min', '2m', '--max', '1m'],
        /--min, --max: maxBytes \(1MiB\) must be at least minBytes \(2MiB\)/,
      ],
      [['loadtest', '--processes', '1'], /--processes: processes must be an integer >= 2, got 1/],
      [['loadtest', '--memory', '2'], /--memory must be at least 4 \(MiB\), got 2/],
      [['get', 'haul1x', '--bogus'], /unknown flag --bogus: see "haul get --help"/],
      [
        ['get', 'haul1x', '--workers', '1000'],
        /--workers: workers must be an integer from 1 to 256, got 1000/,
      ],
    ]
    for (const [args, message] of cases) {
      const r = await run(args)
      expect(r.code, args.join(' ')).toBe(2)
      // Nothing above it: no progress line was drawn to end.
      expect(r.stderr, args.join(' ')).toMatch(/^error \[INVALID_ARGUMENT\]: /)
      expect(r.stderr, args.join(' ')).toMatch(message)
    }
  })

  it('with --json a usage error is an error event on stdout, still exit 2', async () => {
    const r = await run(['get', 'haul1x', '--priority', 'urgent', '--json'])
    expect(r.code).toBe(2)
    expect(events(r.stdout)).toEqual([
      { event: 'error', code: 'INVALID_ARGUMENT', message: expect.stringContaining('--priority') },
    ])
  })

  it('haul alone prints the usage and exits 2; --help exits 0', async () => {
    const bare = await run([])
    expect(bare.code).toBe(2)
    expect(bare.stdout).toContain('Usage:')
    const help = await run(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toBe(bare.stdout)
    for (const c of ['send', 'get', 'seed', 'index']) expect(help.stdout).toContain(`haul ${c} `)
    expect(help.stdout).toContain('130 interrupted')
  })

  it('--version prints the package version and exits 0, before anything else is checked', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'))
    for (const args of [['--version'], ['-V'], ['send', '--version']]) {
      const r = await run(args)
      expect(r.code).toBe(0)
      expect(r.stdout.trim()).toBe(`haul ${pkg.version}`)
    }
  })

  it('each command has its own --help with its options, examples and exit codes', async () => {
    const want: Record<string, { has: string[]; lacks: string[] }> = {
      send: {
        has: ['--data-dir', '--upload-limit', '--chunking', '--metrics', '--max-open-files'],
        lacks: ['--force', '--max-rate'],
      },
      get: {
        has: [
          '--force',
          '--wait',
          '--max-rate',
          '--priority',
          'bytes per second',
          '--metrics',
          '--max-open-files',
          '--data-dir',
        ],
        lacks: ['--upload-limit'],
      },
      seed: {
        has: ['--data-dir', '--upload-limit', '.part', '--metrics', '--max-open-files'],
        lacks: ['--force'],
      },
      index: { has: ['--out', '--chunking'], lacks: ['--listen', '--metrics', '--max-open-files'] },
    }
    for (const [command, { has, lacks }] of Object.entries(want)) {
      const r = await run([command, '--help'])
      expect(r.code, command).toBe(0)
      expect(r.stdout).toMatch(new RegExp(`^haul ${command} <`))
      for (const s of [...has, 'Example', 'Exit codes: 0 done'])
        expect(r.stdout, `${command}: ${s}`).toContain(s)
      for (const s of lacks) expect(r.stdout, `${command}: ${s}`).not.toContain(s)
    }
  })

  it('out of file descriptors, TOO_MANY_OPEN_FILES names --max-open-files (not the engine option), and a lower one serves', async () => {
    const folder = join(dir, 'many')
    await mkdir(folder)
    for (let i = 0; i < 300; i++) await writeFile(join(folder, `f${i}`), 16, 'random', i)
    // Under this limit the default bound (16, the least) leaves too few descriptors for the rest.
    const under = (flags: string[]): Running =>
      new Running(
        [
          '-c',
          `ulimit -n 38 && exec "$0" "$@"`,
          process.execPath,
          bin,
          'send',
          folder,
          '--workers',
          '1',
          '--listen',
          '/ip4/127.0.0.1/tcp/0',
          '--data-dir',
          join(dir, `fd-data-${flags.length}`),
          '--json',
          ...flags,
        ],
        { command: 'bash' },
      )
    const failed = under([])
    expect(await failed.exited).toBe(1)
    const error = failed.events.find((e) => e.event === 'error')
    expect(error).toMatchObject({ code: 'TOO_MANY_OPEN_FILES' })
    expect(error?.message).toContain(
      'raise the limit of open files (`ulimit -n`), or lower --max-open-files <n>',
    )
    expect(error?.message).not.toContain('server.maxOpenFiles')
    const lower = under(['--max-open-files', '1'])
    try {
      expect(await lower.event('published')).toMatchObject({ files: 300 })
      expect(await lower.stop()).toBe(0)
    } finally {
      lower.kill()
    }
  })

  it('a command that serves nothing (haul index) says only to raise the limit of open files', () => {
    const emfile = Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })
    const err = inCliTerms(tooManyOpenFiles(emfile, '/x/f'), false)
    expect(err).toBeInstanceOf(TooManyOpenFilesError)
    expect((err as Error).message).toBe(
      '/x/f: too many open files (EMFILE): raise the limit of open files (`ulimit -n`)',
    )
  })

  it('a missing or folder source is SOURCE_INVALID (exit 1), not a destination error', async () => {
    const missing = await run(['send', join(dir, 'no-such-file'), '--json'])
    expect(missing.code).toBe(1)
    expect(events(missing.stdout).at(-1)).toMatchObject({ event: 'error', code: 'SOURCE_INVALID' })
    const folder = await run(['index', dir])
    expect(folder.code).toBe(1)
    expect(folder.stderr).toContain('SOURCE_INVALID')
    expect(folder.stderr).toContain('is a folder')
    const seed = await run(['seed', join(dir, 'nothing.iso')])
    expect(seed.code).toBe(1)
    expect(seed.stderr).toMatch(/error \[SOURCE_INVALID\]: nothing to seed/)
    const seedFolder = await run(['seed', dir])
    expect(seedFolder.code).toBe(1)
    expect(seedFolder.stderr).toMatch(
      /error \[SOURCE_INVALID\]: .* is a folder: .*serve a folder with haul send/,
    )
  })

  it('a source through a loop of links or with a name too long is SOURCE_INVALID saying so (exit 1), not INTERNAL', async () => {
    const loop = join(dir, 'loop')
    await symlink(loop, loop)
    const looped = await run(['index', loop])
    expect(looped.code).toBe(1)
    expect(looped.stderr).toMatch(/error \[SOURCE_INVALID\]: .*loop of symbolic links \(ELOOP\)/)
    const long = await run(['index', join(dir, 'n'.repeat(300))])
    expect(long.code).toBe(1)
    expect(long.stderr).toMatch(
      /error \[SOURCE_INVALID\]: .*longer than the filesystem allows \(ENAMETOOLONG\)/,
    )
  })

  it('haul index -o a path that cannot take the descriptor is DESTINATION_INVALID before indexing, naming the path given', async () => {
    const folder = join(dir, 'index-out')
    await mkdir(folder)
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'no-such-folder', 'x'), /the folder .*no-such-folder does not exist \(ENOENT\): create it/],
      [folder, /index-out is a directory: give a file path/],
      [join(src, 'x'), /data\.bin, or a folder above it, is a file, not a folder \(ENOTDIR\)/],
      ['/proc/self/haul-x', /cannot create \/proc\/self\/haul-x \(ENOENT\): \/proc\/self takes no new files/],
    ]
    for (const [out, message] of cases) {
      const r = await run(['index', src, '-o', out, '--json'])
      expect(r.code, out).toBe(1)
      // Refused before a byte was read: no indexing event, only the error.
      const evs = events(r.stdout)
      expect(evs, out).toHaveLength(1)
      expect(evs[0], out).toMatchObject({ event: 'error', code: 'DESTINATION_INVALID' })
      expect(evs[0]!.message, out).toMatch(message)
      expect(evs[0]!.message, out).not.toMatch(/\.tmp\b/)
    }
  })

  it('haul index -o the file indexed is DESTINATION_INVALID however named, --force or not; another file there is DESTINATION_EXISTS unless --force; the file is never touched', async () => {
    const victim = join(dir, 'victim.bin')
    await writeFile(victim, 200_000, 'random', 7)
    const digest = await sha256File(victim)
    await symlink('victim.bin', join(dir, 'victim-link'))
    await link(victim, join(dir, 'victim-hard'))
    const cases: Array<[string, string, string[]]> = [
      [victim, victim, []],
      [victim, victim, ['--force']],
      // Spelled otherwise: relative, through a link, another name of the same inode.
      ['victim.bin', `./sub/../victim.bin`, ['--force']],
      [victim, join(dir, 'victim-link'), ['--force']],
      [victim, join(dir, 'victim-hard'), ['--force']],
    ]
    await mkdir(join(dir, 'sub'))
    for (const [file, out, force] of cases) {
      const r = await run(['index', file, '-o', out, '--json', ...force], undefined, dir)
      expect(r.code, `${out} ${force}`).toBe(1)
      // Refused before a byte was read: no indexing event, only the error.
      const evs = events(r.stdout)
      expect(evs, out).toHaveLength(1)
      expect(evs[0], out).toMatchObject({ event: 'error', code: 'DESTINATION_INVALID' })
      expect(evs[0]!.message, out).toMatch(
        /names .*victim\.bin itself: the descriptor would replace the data/,
      )
    }
    expect(await sha256File(victim)).toBe(digest)

    const notes = join(dir, 'notes.txt')
    await writeFileText(notes, 'precious\n')
    const refused = await run(['index', victim, '-o', notes, '--json'])
    expect(refused.code).toBe(1)
    expect(events(refused.stdout)).toEqual([
      expect.objectContaining({
        event: 'error',
        code: 'DESTINATION_EXISTS',
        message: expect.stringMatching(/--force/),
      }),
    ])
    expect(await readFile(notes, 'utf8')).toBe('precious\n')
    const forced = await run(['index', victim, '-o', notes, '--json', '--force'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(events(forced.stdout).at(-1)).toMatchObject({ event: 'indexed', descriptor: notes })
    expect((await readFile(notes)).subarray(0, 9).toString()).not.toBe('precious\n')
    expect(await sha256File(victim)).toBe(digest)
  })

  it('haul loadtest --report that cannot be a folder fails before the run, typed, never spinning (/proc)', async () => {
    const cases: Array<[string, RegExp]> = [
      [
        '/proc/haul-report',
        /^error \[DESTINATION_INVALID\]: --report: cannot create \/proc\/haul-report .*takes no new files/,
      ],
      [src, /^error \[DESTINATION_INVALID\]: --report .*data\.bin is a file, not a folder: give a folder/],
      [
        join(src, 'r'),
        /^error \[DESTINATION_INVALID\]: --report: .*data\.bin, or a folder above it, is a file/,
      ],
    ]
    for (const [report, message] of cases) {
      const r = await run(['loadtest', '--report', report, '--transfers', '2', '--scrape-every', '0'])
      expect(r.code, report).toBe(1)
      // Refused before the run: no progress line, no engine process started.
      expect(r.stderr, report).toMatch(message)
      expect(r.stderr, report).not.toMatch(/done/)
    }
  })

  it('a listen address that cannot be used (port taken, address not here) is CONFIG_INVALID naming it, no stack', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const { port } = taken.address() as AddressInfo
    try {
      const busy = await run(['send', src, '--listen', `/ip4/127.0.0.1/tcp/${port}`])
      expect(busy.code).toBe(1)
      expect(busy.stderr).toContain(`error [CONFIG_INVALID]: cannot listen on /ip4/127.0.0.1/tcp/${port} (`)
      expect(busy.stderr).toContain('EADDRINUSE')
      expect(busy.stderr).not.toMatch(/\bat \S+ \(/)
    } finally {
      taken.close()
    }
  })

  it('a --data-dir that is a file: CONFIG_INVALID saying so (exit 1)', async () => {
    const r = await run(['send', src, '--data-dir', src, '--listen', '/ip4/127.0.0.1/tcp/0'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/error \[CONFIG_INVALID\]: .*is a file, not a folder \(ENOTDIR\): give a folder/)
    // Under /proc no folder can be made: an error at once (node's recursive mkdir never settles there).
    const proc = await run(['send', src, '--data-dir', '/proc/haul-nope', '--listen', '/ip4/127.0.0.1/tcp/0'])
    expect(proc.code).toBe(1)
    expect(proc.stderr).toMatch(/error \[CONFIG_INVALID\]: cannot create data directory \/proc\/haul-nope/)
  })

  it('a ticket split into words by the shell (pasted unquoted with a space) is refused saying so, before anything starts', async () => {
    const ticket = encodeSwarmTicket({
      cid: new Uint8Array(32).fill(3),
      providers: [
        { peerId: '12D3KooWAbc', addrs: ['/ip4/127.0.0.1/tcp/9'], secret: new Uint8Array(16).fill(5) },
      ],
      name: 'photos',
      kind: 'collection',
    })
    const other = encodeSwarmTicket({
      cid: new Uint8Array(32).fill(3),
      providers: [{ peerId: '12D3KooWDef', addrs: ['/ip4/127.0.0.1/tcp/10'] }],
      name: 'photos',
      kind: 'collection',
    })
    const out = join(dir, 'split-out')
    const cases: Array<[string[], RegExp]> = [
      [
        [ticket.slice(0, 60), ticket.slice(60)],
        /the ticket was split into 2 words by the shell .*put it in quotes/,
      ],
      [
        [ticket.slice(0, 30), ticket.slice(30, 90), ticket.slice(90)].map((w) => w.toUpperCase()),
        /the ticket was split into 3 words by the shell/,
      ],
      // The second of two tickets split: the first is whole.
      [[other, ticket.slice(0, 77), ticket.slice(77)], /the ticket was split into 2 words by the shell/],
      [
        [ticket, 'photos-copy'],
        /"photos-copy" is not one, nor the rest of the ticket before it: say where to write with -o <path>/,
      ],
    ]
    for (const [words, message] of cases) {
      const r = await run(['get', ...words, '-o', out])
      expect(r.code, words.join(' ')).toBe(2)
      expect(r.stderr, words.join(' ')).toMatch(/^error \[INVALID_ARGUMENT\]: /)
      expect(r.stderr, words.join(' ')).toMatch(message)
    }
    // Nothing was written.
    expect(await readFile(out).catch((err: NodeJS.ErrnoException) => err.code)).toBe('ENOENT')
  })

  it('tickets of two contents are TICKET_INVALID saying to fetch each on its own, before anything starts', async () => {
    const of = (fill: number): string =>
      encodeSwarmTicket({
        cid: new Uint8Array(32).fill(fill),
        providers: [{ peerId: '12D3KooWAbc', addrs: ['/ip4/127.0.0.1/tcp/9'] }],
        name: `f${fill}.bin`,
      })
    const r = await run(['get', of(1), of(2), '-o', join(dir, 'two-contents')])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(
      /^error \[TICKET_INVALID\]: the tickets name 2 different contents: .*fetch each content on its own \(one haul get/,
    )
  })

  it('a damaged ticket is TICKET_INVALID (exit 1)', async () => {
    const r = await run(['get', 'haul1notaticket'])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('TICKET_INVALID')
  })
})
