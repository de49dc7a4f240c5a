/**
 * One destination, one owner: a fetch holds `<dest>.part.lock` while it writes `<dest>.part`,
 * its journal and the final rename, and a seed (Engine.seed, `haul seed`) while it serves
 * `<dest>.part`, so a second fetch or seed of the same path (another process, or another engine
 * in this one) fails at once with DESTINATION_BUSY naming the holder and what it does, or (a
 * fetch) waits for it when asked. Without it a seed would serve a part file a fetch renames
 * away, and a fetch would resume into one a seed serves.
 *
 * The lock is a file created with O_EXCL holding the owner's pid, host, process start time and a
 * random tag. Node has no flock(), and a lock file must survive `kill -9` correctly, so a holder
 * is checked, not trusted: on the same host, a lock whose process is gone (no such pid, or a pid
 * reused by a process that started at another time, read from /proc) is stale and is taken over.
 * A lock from another host (a shared filesystem) cannot be checked and counts as held.
 *
 * Taking over is a rename of the stale file to a name of our own, then a check that what moved
 * is the stale lock that was read: if another process replaced it in between, theirs is put back
 * with link() (which never overwrites), and the destination counts as busy.
 *
 * The lock is one of a fetch's own files (./safe-open.ts): it is created with O_EXCL|O_NOFOLLOW
 * and read only if it is a regular file (never through a link, never from a FIFO or a device,
 * at most 4 KiB), so an entry planted under its name fails the fetch with DESTINATION_INVALID
 * instead of hanging it or being followed. Taking the lock also records the destination folder's
 * identity (./dest-folder.ts), which the fetch's later opens and final rename must find again.
 */
import { randomBytes } from 'node:crypto'
import { constants, readFileSync } from 'node:fs'
import { type FileHandle, link, lstat, open, rename, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { AbortedError, DestinationBusyError, DestinationInvalidError } from '../errors.ts'
import { DestFolder, nameIn, rememberFolder } from './dest-folder.ts'
import { fsError } from './fs-errors.ts'
import { kindOf, O_NOFOLLOW } from './safe-open.ts'

export function lockPath(dest: string): string {
  return `${dest}.part.lock`
}

/** What a lock file says about its owner. */
export interface LockOwner {
  readonly pid: number
  readonly host: string
  /** The owner's start time in clock ticks since boot (/proc/<pid>/stat), when known. */
  readonly start: string | undefined
  readonly tag: string
  /** When the lock was taken (ISO time). */
  readonly since: string
  /** What the owner does with the destination (LockRole). */
  readonly role: LockRole
}

/** What a lock's owner does with `<dest>.part`: writes it (a fetch) or serves it (a seed). */
export type LockRole = 'fetch' | 'seed'

export interface LockOptions {
  /** Wait for the holder to finish instead of failing with DESTINATION_BUSY. @default false */
  wait?: boolean
  signal?: AbortSignal
  /** How often a waiter looks again. @default 200 */
  pollMs?: number
  /** With `wait`: called once, as the waiting begins, with who holds the destination. */
  onWait?: (holder: string) => void
  /** What the taker does with the destination: its lock says so to whoever finds it busy. @default 'fetch' */
  role?: LockRole
}

/** A lock file that cannot be parsed this long after it was written is debris of a crash. */
const UNREADABLE_STALE_MS = 10_000
/** A lock file holds one short JSON line; more is not a lock of ours. */
const MAX_LOCK_BYTES = 4096

let ownStart: string | undefined | null = null

/** A process's state and start time (clock ticks since boot); undefined where /proc has none. */
function processStat(pid: number): { state: string; start: string | undefined } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields 3 and 22, counted after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0] ?? '', start: fields[19] }
  } catch {
    return undefined
  }
}

function processStart(pid: number): string | undefined {
  return processStat(pid)?.start
}

function alive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true
  if (owner.pid === process.pid) return true
  const stat = processStat(owner.pid)
  // A process killed a moment ago stays a zombie until its parent reaps it (for a while, where
  // the reaper is slow): it holds no file and writes nothing, so its lock is stale.
  if (stat !== undefined && (stat.state === 'Z' || stat.state === 'X')) return false
  const start = stat?.start
  if (start !== undefined) return owner.start === undefined || start === owner.start
  try {
    process.kill(owner.pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>
    if (!Number.isSafeInteger(o.pid) || typeof o.host !== 'string' || typeof o.tag !== 'string')
      return undefined
    return {
      pid: o.pid!,
      host: o.host,
      start: typeof o.start === 'string' ? o.start : undefined,
      tag: o.tag,
      since: typeof o.since === 'string' ? o.since : '',
      // A lock written before seeds took one names no role: it was a fetch's.
      role: o.role === 'seed' ? 'seed' : 'fetch',
    }
  } catch {
    return undefined
  }
}

export class DestinationLock {
  readonly path: string
  readonly #tag: string
  /** The folder the lock was taken in: it is released there, wherever that folder has gone. */
  readonly #folder: DestFolder | undefined
  readonly #forget: () => void
  #held = true

  private constructor(path: string, tag: string, folder?: DestFolder, forget = () => {}) {
    this.path = path
    this.#tag = tag
    this.#folder = folder
    this.#forget = forget
  }

  /**
   * Takes the lock of `dest`. Fails with DestinationBusyError while a live owner holds it (or waits,
   * with `wait`), and with the usual destination errors when the folder is missing or not writable.
   */
  static async acquire(dest: string, opts: LockOptions = {}): Promise<DestinationLock> {
    const path = lockPath(dest)
    ownStart = ownStart === null ? processStart(process.pid) : ownStart
    const me: LockOwner = {
      pid: process.pid,
      host: hostname(),
      start: ownStart,
      tag: randomBytes(8).toString('hex'),
      since: new Date().toISOString(),
      role: opts.role ?? 'fetch',
    }
    let told = false
    for (;;) {
      if (opts.signal?.aborted) throw new AbortedError('the transfer was cancelled')
      if (await create(path, me)) {
        let folder: DestFolder
        try {
          folder = await DestFolder.pin(dest)
        } catch (err) {
          await new DestinationLock(path, me.tag).release()
          throw err
        }
        return new DestinationLock(path, me.tag, folder, rememberFolder(dest, folder.identity))
      }
      const holder = await readOwner(path)
      if (holder === 'gone') continue
      if (holder === undefined ? await unreadableForLong(path) : !alive(holder)) {
        await takeOver(path, holder)
        continue
      }
      if (!opts.wait) throw busy(dest, holder, me.role)
      if (!told) opts.onWait?.(holderText(holder))
      told = true
      await sleep(opts.pollMs ?? 200, opts.signal)
    }
  }

  /**
   * Resolves once no live owner holds the lock of `dest` (at once when none does), without
   * taking it: DestinationBusyError while one does, or, with `wait`, waits as acquire does. For
   * work worth skipping while another fetch writes the destination; only acquire settles a race,
   * so the caller takes the lock after all the same. A lock file that cannot be read counts as
   * free here (acquire judges it).
   */
  static async free(dest: string, opts: LockOptions = {}): Promise<void> {
    let told = false
    for (;;) {
      if (opts.signal?.aborted) throw new AbortedError('the transfer was cancelled')
      const holder = await readOwner(lockPath(dest)).catch(() => undefined)
      if (holder === 'gone' || holder === undefined || !alive(holder)) return
      if (!opts.wait) throw busy(dest, holder, opts.role)
      if (!told) opts.onWait?.(holderText(holder))
      told = true
      await sleep(opts.pollMs ?? 200, opts.signal)
    }
  }

  /** Gives the lock back (removes the file if it is still ours). Idempotent. */
  async release(): Promise<void> {
    if (!this.#held) return
    this.#held = false
    this.#forget()
    const at = this.#folder?.at(nameIn(this.path)) ?? this.path
    // Something else standing at the lock's name now (a link, say) is not ours to remove.
    const owner = await readOwner(at).catch(() => undefined)
    if (owner !== 'gone' && owner?.tag === this.#tag) await unlink(at).catch(() => {})
    await this.#folder?.close()
  }
}

/** True if the lock file was created with `me` in it; false if one exists already. */
async function create(path: string, me: LockOwner): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof open>>
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW, 0o644)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw fsError(err, path)
  }
  try {
    await fh.writeFile(`${JSON.stringify(me)}\n`)
  } catch (err) {
    await fh.close().catch(() => {})
    await unlink(path).catch(() => {})
    throw fsError(err, path)
  }
  await fh.close()
  return true
}

async function readOwner(path: string): Promise<LockOwner | undefined | 'gone'> {
  let fh: FileHandle
  try {
    fh = await open(path, constants.O_RDONLY | O_NOFOLLOW | (constants.O_NONBLOCK ?? 0))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return 'gone'
    if (code === 'ELOOP') throw notALock(path, 'a symbolic link')
    throw fsError(err, path)
  }
  try {
    const s = await fh.stat()
    if (!s.isFile()) throw notALock(path, kindOf(s))
    const buf = Buffer.alloc(MAX_LOCK_BYTES)
    const { bytesRead } = await fh.read(buf, 0, MAX_LOCK_BYTES, 0)
    return parseOwner(buf.toString('utf8', 0, bytesRead))
  } catch (err) {
    throw fsError(err, path)
  } finally {
    await fh.close().catch(() => {})
  }
}

function notALock(path: string, kind: string): DestinationInvalidError {
  return new DestinationInvalidError(
    `${path} is ${kind}, not a lock haul wrote: remove it, then fetch again (or choose another destination)`,
  )
}

/** An owner writes its lock right after creating it: one still unreadable after a while was cut short. */
async function unreadableForLong(path: string): Promise<boolean> {
  const s = await lstat(path).catch(() => undefined)
  return s !== undefined && Date.now() - s.mtimeMs > UNREADABLE_STALE_MS
}

async function takeOver(path: string, stale: LockOwner | undefined): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    await rename(path, aside)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw fsError(err, path)
  }
  const moved = await readOwner(aside)
  const same = moved !== 'gone' && (stale === undefined ? moved === undefined : moved?.tag === stale.tag)
  // Another process replaced the stale lock between our read and our rename: its lock goes back.
  if (!same) await link(aside, path).catch(() => {})
  await unlink(aside).catch(() => {})
}

/** DESTINATION_BUSY for a taker doing `role`, saying who holds `dest`, doing what, and what to do. */
function busy(dest: string, holder: LockOwner | undefined, role: LockRole = 'fetch'): DestinationBusyError {
  const who = holderText(holder)
  // The message says what the holder does; `holder` (what onWait and --json show) says it as well.
  const named = holderText(holder, false)
  const part = `${dest}.part`
  let message: string
  if (holder?.role === 'seed') {
    message =
      role === 'seed'
        ? `${part} is already being seeded by ${named}: its ticket serves it; stop that seed (Ctrl-C) to seed it here`
        : `${part} is being seeded by ${named}: stop that seed (Ctrl-C) or wait for it to stop (haul get --wait), then fetch again; or choose another destination`
  } else {
    message =
      role === 'seed'
        ? `${dest} is being written by ${who}, a fetch (which serves what it has verified itself): seed ${part} once that fetch has stopped`
        : `${dest} is being written by ${who}: wait for it to finish (haul get --wait), or choose another destination`
  }
  return new DestinationBusyError(message, { holder: who })
}

/** Who holds a lock, for a message: its process, host (when another), that it seeds (`role`) and since when. */
function holderText(holder: LockOwner | undefined, role = true): string {
  if (holder === undefined) return 'another fetch'
  const host = holder.host === hostname() ? '' : ` on ${holder.host}`
  const about = [
    role && holder.role === 'seed' ? 'seeding it' : '',
    holder.since === '' ? '' : `since ${holder.since}`,
  ]
    .filter((a) => a !== '')
    .join(', ')
  return `process ${holder.pid}${host}${about === '' ? '' : ` (${about})`}`
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms)
    function done(): void {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }
    function onAbort(): void {
      clearTimeout(t)
      reject(new AbortedError('the transfer was cancelled'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
