import { execFile, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants, existsSync } from 'node:fs'
import { cp, mkdir, readFile, realpath, symlink } from 'node:fs/promises'
import { delimiter, dirname, join, sep } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sha256File, tempDir, writeFile } from '../support/files.ts'
import { eventually } from '../support/wait.ts'
import { events, Running } from './run.ts'

const root = new URL('../..', import.meta.url).pathname
const run = promisify(execFile)

/** PATH as a user's shell has it: without the node_modules/.bin folders npm and npx put first. */
const systemPath = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((d) => d !== '' && !d.split(sep).includes('node_modules'))

function which(name: string, path: readonly string[]): string | undefined {
  for (const d of path) {
    try {
      accessSync(join(d, name), constants.X_OK)
      return join(d, name)
    } catch {}
  }
  return undefined
}

const nodeMajor = (node: string): number =>
  Number(spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.replace(/^v/, '').split('.')[0])

/** The first `node` on the system PATH older than haul needs (the machine's Node 20), if any. */
const oldNode = systemPath
  .map((d) => which('node', [d]))
  .find((n): n is string => n !== undefined && nodeMajor(n) < 22)

/**
 * `haul` installed as a user installs it from a checkout, `npm install -g <checkout>` (here into
 * a temporary prefix), run with the machine's old Node first on PATH: the bin finds the pinned
 * Node 24 and runs under it. npm's `prepare` builds dist/ in the installed copy. The checkout is
 * copied (sources and configs, node_modules linked) so that the build does not rewrite the
 * dist/ other tests run; dependencies are already there, nothing is fetched
 * (`--prefer-offline`). Without an old Node on PATH the same runs on the one there is.
 */
describe('haul installed with npm install -g, run on the system Node', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let env: NodeJS.ProcessEnv
  let haul: string
  let pkg: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('haul-install-'))
    const path = [...(oldNode === undefined ? [] : [dirname(oldNode)]), ...systemPath]
    // Nothing of the npm running these tests leaks into the user's npm.
    env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
    env.PATH = path.join(delimiter)
    pkg = join(dir, 'checkout')
    await mkdir(pkg)
    for (const f of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'bin',
      'scripts',
      'src',
    ]) {
      await cp(join(root, f), join(pkg, f), { recursive: true })
    }
    await symlink(await realpath(join(root, 'node_modules')), join(pkg, 'node_modules'))
    haul = join(dir, 'prefix', 'bin', 'haul')
  })
  afterAll(() => cleanup())

  it('npm install -g builds it; haul --version and a send/get round trip work', {
    timeout: 120_000,
  }, async () => {
    const npm = which('npm', systemPath)
    expect(npm, `npm on ${systemPath.join(delimiter)}`).toBeDefined()
    await run(
      npm!,
      ['install', '-g', '--prefix', join(dir, 'prefix'), pkg, '--prefer-offline', '--no-audit', '--no-fund'],
      { env, encoding: 'utf8' },
    )
    expect(existsSync(join(pkg, 'dist', 'cli', 'main.js'))).toBe(true)
    const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }
    expect((await run(haul, ['--version'], { env, encoding: 'utf8' })).stdout).toBe(`haul ${version}\n`)

    const src = join(dir, 'data.bin')
    await writeFile(src, 2 * 1024 * 1024 + 7, 'random')
    const sender = new Running(['send', src, '--json'], { command: haul, env })
    try {
      const { ticket } = await sender.event('published')
      const dest = join(dir, 'copy.bin')
      const got = await run(haul, ['get', ticket as string, '-o', dest, '--json'], { env, encoding: 'utf8' })
      expect(events(got.stdout).at(-1)).toMatchObject({ event: 'done', bytes: 2 * 1024 * 1024 + 7 })
      expect(await sha256File(dest)).toBe(await sha256File(src))
      await sender.event('transfer-ended')
      // Ctrl-C reaches the CLI through the bin that re-ran it.
      expect(await sender.stop('SIGINT')).toBe(0)
      expect(sender.events.at(-1)).toMatchObject({ event: 'stopped', bytesServed: 2 * 1024 * 1024 + 7 })
    } finally {
      sender.kill()
    }
  })

  it.skipIf(oldNode === undefined)(
    'kill -9 of the haul a script started takes the pinned Node it re-ran under with it: nothing is left holding the destination',
    async () => {
      const src = join(dir, 'killed.bin')
      await writeFile(src, 64 * 1024, 'random')
      const launcher = new Running(['send', src, '--json', '--listen', '/ip4/127.0.0.1/tcp/0'], {
        command: haul,
        env,
      })
      try {
        await launcher.event('published')
        const pid = launcher.proc.pid!
        const [child] = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8'))
          .trim()
          .split(' ')
          .map(Number)
        expect(await readFile(`/proc/${child}/cmdline`, 'utf8')).toContain('send')
        launcher.kill()
        await eventually(() => !existsSync(`/proc/${child}`), 'the pinned Node process is gone')
      } finally {
        launcher.kill()
      }
    },
  )

  it('a launcher killed before its child looked: the child (another parent by then) stops at once; what it starts is not taken for its child', async () => {
    const src = join(dir, 'orphan.bin')
    await writeFile(src, 64 * 1024, 'random')
    const bin = join(root, 'bin', 'haul.js')
    const args = [bin, 'send', src, '--json', '--listen', '/ip4/127.0.0.1/tcp/0']
    const started = (launcherPid: string, ipc: boolean) =>
      spawn(process.execPath, args, {
        stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
        env: { ...process.env, HAUL_LAUNCHER_PID: launcherPid },
      })
    // Its launcher is gone: the pid it names is not its parent's.
    const orphan = started('1', true)
    // Still running after 10 s: ended by SIGTERM, which fails the assertion, not left behind.
    const late = setTimeout(() => orphan.kill('SIGTERM'), 10_000)
    const [, signal] = await once(orphan, 'exit')
    clearTimeout(late)
    expect(signal).toBe('SIGKILL')
    // Its launcher is its parent: it runs (and dies once the channel closes).
    for (const [launcherPid, ipc] of [
      [String(process.pid), true],
      ['1', false],
    ] as const) {
      const child = started(launcherPid, ipc)
      try {
        const published = await new Promise<boolean>((resolve, reject) => {
          createInterface({ input: child.stdout! }).on('line', (l) => {
            if (l.includes('"published"')) resolve(true)
          })
          child.once('exit', (code, sig) => reject(new Error(`exited ${code ?? sig}`)))
        })
        expect(published).toBe(true)
      } finally {
        child.kill('SIGKILL')
      }
    }
  })

  it.skipIf(oldNode === undefined)(
    'an embedder on the system Node gets CONFIG_INVALID saying which Node haul needs, not a TypeError',
    () => {
      const script = `import('${join(root, 'dist', 'index.js')}').then((m) => m.createEngine()).then(
      () => console.log('created'),
      (e) => console.log(e.constructor.name, e.code, e.message))`
      const r = spawnSync(oldNode!, ['--input-type=module', '-e', script], { env, encoding: 'utf8' })
      expect(r.stdout).toMatch(
        /^ConfigInvalidError CONFIG_INVALID haul needs Node\.js 22 or newer; this is Node\.js 20\./,
      )
    },
  )

  it.skipIf(oldNode === undefined)('without the pinned Node beside it, the bin says what to do', async () => {
    const lonely = join(dir, 'lonely', 'bin', 'haul.js')
    await mkdir(dirname(lonely), { recursive: true })
    await cp(join(root, 'bin', 'haul.js'), lonely)
    const r = spawnSync(oldNode!, [lonely, '--version'], { env, encoding: 'utf8' })
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('haul needs Node.js 22 or newer')
    expect(r.stderr).toContain(join(dir, 'lonely', 'node_modules', 'node', 'bin', 'node'))
    expect(r.stderr).toContain('npm install -g /path/to/haul-checkout')
  })
})
