/**
 * What a fetch finds at its destination before it writes anything: nothing, the very content it is
 * about to fetch (then nothing is fetched), or other data, which is never replaced unless the
 * caller said so. Decided once the descriptor header is known, because a file's content id
 * depends on the chunking the header names.
 */

import type { Stats } from 'node:fs'
import type { DescriptorHeader } from '../descriptor/header.ts'
import { DestinationExistsError } from '../errors.ts'
import { bytesEqual } from '../merkle/hash.ts'
import { journalPath } from '../storage/journal.ts'
import { assertNotSpecial, assertReplaceable, entryAt, unlinkEntry } from '../storage/safe-open.ts'
import { ProgressMeter } from '../transfer/progress.ts'
import type { ResumeInfo } from './resume.ts'

export interface DestinationPolicy {
  /** Replace a file already at the destination that holds other data. @default false */
  readonly overwrite: boolean
  /**
   * The content id of a local file cut as `header` says (it indexes the file); `onChunk` is told
   * each chunk's bytes as it is hashed.
   */
  readonly contentIdOf: (
    path: string,
    header: DescriptorHeader,
    signal: AbortSignal,
    onChunk?: (bytes: number) => void,
  ) => Promise<Uint8Array>
}

/**
 * True when `dest` already holds the content `cid` names, byte for byte (a regular file of the
 * right size whose content id, computed here, is `cid`). False when nothing is there, or when
 * other data is and `overwrite` allows replacing it; DestinationExistsError otherwise. A symlink
 * is never followed: it is other data, and `overwrite` replaces the link itself. Never replaced,
 * even with `overwrite`: a directory, device, FIFO or socket (DESTINATION_INVALID), and a
 * read-only file (PERMISSION_DENIED; rules in src/storage/safe-open.ts).
 *
 * Reading a large file back takes a while (~270 MiB/s cold here: an hour a TiB), so the check
 * is followed on `check` (ProgressMeter.startCheck), when given.
 */
export async function holdsContent(
  dest: string,
  cid: Uint8Array,
  header: DescriptorHeader,
  policy: DestinationPolicy,
  signal: AbortSignal,
  check?: { readonly meter: ProgressMeter; readonly report: (force: boolean) => void },
): Promise<boolean> {
  const s = await entryAt(dest)
  if (s === undefined) return false
  assertNotSpecial(s, dest)
  if (s.isFile() && s.size === header.totalSize) {
    check?.meter.startCheck(header.totalSize, header.leafCount)
    const onChunk =
      check === undefined
        ? undefined
        : (bytes: number): void => {
            check.meter.checked(bytes)
            check.report(false)
          }
    const found = await policy.contentIdOf(dest, header, signal, onChunk)
    if (check !== undefined) {
      check.meter.checkComplete()
      check.report(true)
      check.meter.endCheck()
    }
    if (bytesEqual(found, cid)) {
      await dropCommitLeftover(dest, s)
      return true
    }
  }
  if (!policy.overwrite) {
    throw new DestinationExistsError(
      `${dest} already exists and holds other data: pass --force (overwrite: true) to replace it, or choose another path`,
    )
  }
  await assertReplaceable(dest)
  return false
}

/** The progress and resume figures of a fetch whose destination already held its content. */
export interface PresentState {
  readonly header: DescriptorHeader
  readonly meter: ProgressMeter
  readonly resume: ResumeInfo
}

export function presentState(header: DescriptorHeader): PresentState {
  return {
    header,
    meter: new ProgressMeter(header.totalSize, header.leafCount, header.totalSize, header.leafCount),
    resume: { mode: 'present', chunksKept: header.leafCount, bytesKept: header.totalSize },
  }
}

/**
 * A crash between the link that makes `<dest>.part` the destination and the unlink of the part
 * name (PartFile.commit) leaves both names on one file, and its journal: the next fetch finds the
 * content present and removes them. A `<dest>.part` that is another file is left alone.
 */
async function dropCommitLeftover(dest: string, placed: Stats): Promise<void> {
  const part = await entryAt(`${dest}.part`)
  if (part === undefined || !part.isFile() || part.ino !== placed.ino || part.dev !== placed.dev) return
  await unlinkEntry(`${dest}.part`)
  await unlinkEntry(journalPath(dest))
}
