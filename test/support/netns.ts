import { type ChildProcess, execFile, execFileSync, type SpawnOptions, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'

/**
 * Network namespaces for tests and benchmarks: namespaces joined by veth pairs, optionally routed
 * through a router namespace and shaped with tbf, and processes run inside them. Traffic stays on
 * this machine: a namespace made here has only its loopback and the veths made here, so use
 * private addresses (10.231.x.y/24) on them. Needs root and iproute2 (`ip`, `tc`) and procps
 * (`sysctl`); canUseNetns() says what is missing.
 *
 * Names are unique per run (the pid and random bytes), so test files running side by side do not
 * collide; teardown() kills what still runs inside the namespaces and deletes them (a veth goes
 * with its namespace), and also runs when the process exits without it.
 */

const NAME = /^[a-z][a-z0-9]{0,5}$/

export type NetnsCheck = { readonly usable: true } | { readonly usable: false; readonly reason: string }

/** Whether this process can build topologies (and, with `shaping`, add tbf qdiscs); if not, why. */
export async function canUseNetns(opts: { shaping?: boolean; nat?: boolean } = {}): Promise<NetnsCheck> {
  const no = (reason: string): NetnsCheck => ({ usable: false, reason })
  if (process.platform !== 'linux') return no(`network namespaces need Linux, not ${process.platform}`)
  if (process.getuid?.() !== 0) return no('network namespaces need root (the CI runs the suite as root)')
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['tc', 'iproute2'],
    ['sysctl', 'procps'],
    ...(opts.nat ? ([['nft', 'nftables']] as const) : []),
  ] as const) {
    const found = await run(tool, ['-V']).then(
      () => true,
      () => false,
    )
    if (!found) return no(`\`${tool}\` is missing (Debian package ${pkg}; .ci/run installs it)`)
  }
  const probe = await Topology.create()
  try {
    await probe.namespace('p')
    await probe.namespace('q')
    await probe.link({ ns: 'p', address: '10.231.255.1/24' }, { ns: 'q', address: '10.231.255.2/24' })
    if (opts.shaping) await probe.shape('p', 'v-q', { rateMbit: 10 })
    if (opts.nat) {
      await probe.namespace('n', { forward: true })
      await probe.masquerade('n', 'lo')
    }
  } catch (err) {
    return no(`cannot build a test topology: ${(err as Error).message}`)
  } finally {
    await probe.teardown().catch(() => {})
  }
  return { usable: true }
}

/** Throws, saying why, when this process cannot use network namespaces: a test's beforeAll. */
export async function requireNetns(opts: { shaping?: boolean; nat?: boolean } = {}): Promise<void> {
  const check = await canUseNetns(opts)
  if (!check.usable) throw new Error(`this test builds network namespaces and cannot: ${check.reason}`)
}

/** Token-bucket shaping of a device's egress (`tc qdisc ... tbf`). */
export interface Shaping {
  /** Mbit/s (10^6 bits per second), counted over whole frames (Ethernet header included). */
  readonly rateMbit: number
  /** Bucket depth in bytes; default tbfDefaults(rate).burst. */
  readonly burstBytes?: number
  /** Bytes queued before tbf drops; default tbfDefaults(rate).limit. */
  readonly limitBytes?: number
}

/**
 * Defaults for tbf at `rateMbit`: burst max(64 KiB, 5 ms at the rate), limit max(4 bursts, 50 ms at
 * the rate); at 100 Mbit/s 64 KiB and 625 KB. The bucket has to cover the gaps between the qdisc
 * watchdog's wake-ups, or the link runs below its rate (tc-tbf(8): at least rate/HZ; HZ is 250
 * here): at 100 Mbit/s a bare TCP stream reaches 92.5 Mbit/s with a 3 KB bucket, 93.8 with 15 KB
 * and 95.6 with 64 KiB, the ceiling of TCP payload at MTU 1500 (1448 of each 1514-byte frame). The
 * limit is the queue tbf holds before it drops: with 200 KB, BBR's probing for bandwidth loses
 * ~500 frames per 64 MiB; with 625 KB none, and the queue is at most 45 ms deep.
 */
export function tbfDefaults(rateMbit: number): { burst: number; limit: number } {
  const bytesPerMs = (rateMbit * 1e6) / 8 / 1000
  const burst = Math.max(64 * 1024, Math.ceil(5 * bytesPerMs))
  return { burst, limit: Math.max(4 * burst, Math.ceil(50 * bytesPerMs)) }
}

/** One side of a veth pair: its namespace (short name), device and address without the prefix. */
export interface LinkEnd {
  readonly ns: string
  readonly dev: string
  readonly ip: string
}

/**
 * Namespaces (short names: a letter, then up to 5 letters or digits) and the veths between them.
 * Every method takes the short names; `nameOf` gives the real one.
 */
export class Topology {
  readonly id: string
  readonly #made: string[] = []
  readonly #onExit = (): void => this.#teardownSync()
  #down = false

  private constructor(id: string) {
    this.id = id
  }

  static async create(): Promise<Topology> {
    const t = new Topology(`${process.pid.toString(36)}${randomBytes(3).toString('hex')}`)
    process.once('exit', t.#onExit)
    return t
  }

  /** The namespace's name for `ip netns`: `haul-<run id>-<name>`. */
  nameOf(ns: string): string {
    return `haul-${this.id}-${ns}`
  }

  /**
   * A namespace with its loopback up. A new namespace copies the host's ip_forward, so it is set
   * either way: on for a router (`forward`), off otherwise, where a packet for another address is
   * dropped without an answer.
   */
  async namespace(ns: string, opts: { forward?: boolean } = {}): Promise<string> {
    if (!NAME.test(ns)) throw new Error(`namespace name ${JSON.stringify(ns)}: a letter, then ≤ 5 [a-z0-9]`)
    if (this.#down) throw new Error('this topology is torn down')
    const name = this.nameOf(ns)
    await run('ip', ['netns', 'add', name])
    this.#made.push(name)
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
    await this.exec(ns, 'sysctl', ['-qw', `net.ipv4.ip_forward=${opts.forward ? 1 : 0}`])
    return name
  }

  /**
   * A veth pair between two namespaces made here, each end `v-<other namespace>` with its address
   * (CIDR, e.g. 10.231.1.1/24) and up; with `shape`, each end's egress goes through tbf.
   */
  async link(
    a: { ns: string; address: string },
    b: { ns: string; address: string },
    opts: { mtu?: number; shape?: Shaping } = {},
  ): Promise<{ a: LinkEnd; b: LinkEnd }> {
    const ends = [
      { ...a, dev: `v-${b.ns}` },
      { ...b, dev: `v-${a.ns}` },
    ] as const
    // Each end is created directly in its namespace, so the device names never meet in the host's.
    await run('ip', [
      'link',
      'add',
      ends[0].dev,
      'netns',
      this.#known(a.ns),
      'type',
      'veth',
      'peer',
      'name',
      ends[1].dev,
      'netns',
      this.#known(b.ns),
    ])
    for (const end of ends) {
      const ns = this.nameOf(end.ns)
      await run('ip', ['-n', ns, 'addr', 'add', end.address, 'dev', end.dev])
      if (opts.mtu !== undefined) await run('ip', ['-n', ns, 'link', 'set', end.dev, 'mtu', String(opts.mtu)])
      await run('ip', ['-n', ns, 'link', 'set', end.dev, 'up'])
      if (opts.shape !== undefined) await this.shape(end.ns, end.dev, opts.shape)
    }
    const [ea, eb] = ends.map((e) => ({ ns: e.ns, dev: e.dev, ip: e.address.split('/')[0]! }))
    return { a: ea!, b: eb! }
  }

  /** `ip route add <to> via <via>` in `ns`; `to` is a prefix or `default`. */
  async route(ns: string, to: string, via: string): Promise<void> {
    await run('ip', ['-n', this.#known(ns), 'route', 'add', to, 'via', via])
  }

  /** Replaces the root qdisc of `dev` in `ns` with tbf (see tbfDefaults for burst and limit). */
  async shape(ns: string, dev: string, s: Shaping): Promise<void> {
    const d = tbfDefaults(s.rateMbit)
    await run('tc', [
      ...['-n', this.#known(ns), 'qdisc', 'replace', 'dev', dev, 'root', 'tbf'],
      ...['rate', `${s.rateMbit}mbit`, 'burst', String(s.burstBytes ?? d.burst)],
      ...['limit', String(s.limitBytes ?? d.limit)],
    ])
  }

  /** The argv that runs `command args` inside `ns` (`ip netns exec`, which execs it: same pid). */
  argv(ns: string, command: string, args: readonly string[] = []): [string, ...string[]] {
    return ['ip', 'netns', 'exec', this.#known(ns), command, ...args]
  }

  /** Starts `command args` inside `ns`; teardown() kills it if it still runs. */
  spawn(ns: string, command: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const [file, ...rest] = this.argv(ns, command, args)
    return spawn(file, rest, opts)
  }

  /** Runs `command args` inside `ns` to its end; its stdout, or an error with its stderr. */
  exec(ns: string, command: string, args: readonly string[] = []): Promise<string> {
    const [file, ...rest] = this.argv(ns, command, args)
    return run(file, rest)
  }

  /**
   * Source NAT in `ns` (a router made with `forward`): what leaves through `dev` takes `dev`'s
   * address, as a home router does (nftables masquerade; replies are translated back).
   */
  async masquerade(ns: string, dev: string): Promise<void> {
    const name = this.#known(ns)
    await run('ip', ['netns', 'exec', name, 'nft', 'add table ip haulnat'])
    await run('ip', [
      'netns',
      'exec',
      name,
      'nft',
      'add chain ip haulnat post { type nat hook postrouting priority 100 ; }',
    ])
    await run('ip', ['netns', 'exec', name, 'nft', `add rule ip haulnat post oifname "${dev}" masquerade`])
  }

  /** Processes running inside `ns`. */
  async pids(ns: string): Promise<number[]> {
    return parsePids(await run('ip', ['netns', 'pids', this.#known(ns)]))
  }

  /**
   * Kills every process left in the namespaces, waits for them to go (a namespace outlives
   * `ip netns del` while a process holds it, and its veths with it), then deletes the namespaces.
   * Goes through all of them whatever fails, then throws the failures together.
   */
  async teardown(): Promise<void> {
    if (this.#down) return
    this.#down = true
    process.off('exit', this.#onExit)
    const failures: Error[] = []
    for (const name of this.#made.splice(0).reverse()) {
      try {
        for (let tries = 0; ; tries++) {
          const pids = parsePids(await run('ip', ['netns', 'pids', name]))
          if (pids.length === 0) break
          if (tries === 50) throw new Error(`processes ${pids.join(', ')} survive SIGKILL in ${name}`)
          for (const pid of pids) kill(pid)
          await new Promise((r) => setTimeout(r, 100))
        }
      } catch (err) {
        failures.push(err as Error)
      }
      await run('ip', ['netns', 'del', name]).catch((err: Error) => failures.push(err))
    }
    if (failures.length > 0) throw new AggregateError(failures, failures.map((e) => e.message).join('; '))
  }

  /** The exit-time fallback: the same, synchronously, best effort. */
  #teardownSync(): void {
    this.#down = true
    for (const name of this.#made.splice(0).reverse()) {
      try {
        for (const pid of parsePids(execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })))
          kill(pid)
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
      } catch {
        // Nothing more can be done while the process exits.
      }
    }
  }

  #known(ns: string): string {
    const name = this.nameOf(ns)
    if (!this.#made.includes(name)) throw new Error(`no namespace ${JSON.stringify(ns)} in this topology`)
    return name
  }
}

function parsePids(out: string): number[] {
  return out
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid)
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // Already gone.
  }
}

/** execFile: stdout, or an error naming the command and its stderr. */
function run(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout)
      else reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`))
    })
  })
}
