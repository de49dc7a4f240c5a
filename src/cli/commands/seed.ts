import { lstat, stat } from 'node:fs/promises'
import { cidToString } from '../../descriptor/cid.ts'
import type { SeedOptions } from '../../engine/api-types.ts'
import type { EngineOptions } from '../../engine/config.ts'
import { SourceInvalidError } from '../../errors.ts'
import { escapeControls } from '../../util/safe-text.ts'
import { onePath } from '../args.ts'
import type { Output } from '../output.ts'
import { publishFile } from './send.ts'
import { serveUntilStopped } from './serving.ts'

const PART = '.part'

/**
 * `haul seed <dest>`: `<dest>.part` (named either way) is served as far as it is verified
 * (Engine.seed: a part file left by a multi-peer fetch, with its journal and leaf pages); a
 * whole file at `<dest>` is published, as `haul send` does.
 */
export async function runSeed(
  paths: readonly string[],
  access: SeedOptions,
  engineOptions: EngineOptions,
  out: Output,
): Promise<number> {
  const target = onePath(paths, 'seed', 'dest')
  const named = target.endsWith(PART) && target.length > PART.length
  const dest = named ? target.slice(0, -PART.length) : target
  const whole = !named && (await isFile(dest))
  if (!whole && !(await isFile(`${dest}${PART}`))) {
    if (!named && (await stat(dest).catch(() => undefined))?.isDirectory() === true) {
      throw new SourceInvalidError(
        `${dest} is a folder: haul seed serves a file or an interrupted single-file get; serve a folder with haul send ${dest}`,
      )
    }
    throw new SourceInvalidError(
      `nothing to seed: ${named ? target : `neither ${dest} nor ${dest}${PART}`} is a file`,
    )
  }
  return serveUntilStopped(engineOptions, out, async (engine, signal) => {
    if (whole) return publishFile(engine, dest, access, signal, out)
    const s = await engine.seed(dest, access)
    return {
      ticket: s.ticket,
      public: access.public === true || s.announced !== undefined,
      ...(s.announced === undefined ? {} : { announced: { cid: cidToString(s.cid), reached: s.announced } }),
      intro: `seeding ${escapeControls(`${dest}${PART}`)}: ${s.chunks} of ${s.leafCount} chunks verified and served${s.chunks < s.leafCount ? ' (a receiver needs other senders for the rest: give haul get this ticket beside theirs)' : ''}`,
      event: {
        event: 'seeding',
        ticket: s.ticket,
        cid: cidToString(s.cid),
        path: `${dest}${PART}`,
        chunks: s.chunks,
        totalChunks: s.leafCount,
        peerId: engine.peerId,
        addresses: engine.addresses,
      },
    }
  })
}

async function isFile(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined)
  return st?.isFile() === true
}
