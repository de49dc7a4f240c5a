import { open, stat } from 'node:fs/promises'
import { journalPath } from '../../src/storage/journal.ts'
import {
  BLOCK,
  encodeSuperblock,
  type JournalInit,
  PAGE_BITS,
  parseSuperblock,
} from '../../src/storage/journal-format.ts'

/** What the superblock of `dest`'s journal records (the seal of a clean stop included). */
export async function journalSuperblock(dest: string): Promise<JournalInit> {
  const fh = await open(journalPath(dest), 'r')
  try {
    const b = new Uint8Array(BLOCK)
    await fh.read(b, 0, BLOCK, 0)
    const sb = parseSuperblock(b)
    if (typeof sb === 'string') throw new Error(`journal of ${dest}: ${sb}`)
    return sb
  } finally {
    await fh.close()
  }
}

/**
 * Leaves the journal of `dest` as a crash (kill -9, power loss) leaves one: its bits as they
 * are, without the seal a clean stop wrote. The next fetch re-hashes the chunks it kept
 * (resume reason `unclean-stop`), as after a real crash, but with a known set of kept chunks.
 */
export async function unsealJournal(dest: string): Promise<void> {
  const sb = await journalSuperblock(dest)
  if (sb.sealedPart === undefined) throw new Error(`journal of ${dest} was not sealed`)
  const unsealed = { ...sb, sealedPart: undefined, pageCount: Math.ceil(sb.leafCount / PAGE_BITS) }
  const fh = await open(journalPath(dest), 'r+')
  try {
    await fh.write(encodeSuperblock(unsealed), 0, BLOCK, 0)
  } finally {
    await fh.close()
  }
}

/**
 * Writes into `dest`'s journal the note a check after a crash leaves as it goes: every kept chunk
 * below `through` checked against the part file as it is now (Journal.noteChecked).
 */
export async function noteCheckedThrough(dest: string, through: number): Promise<void> {
  const sb = await journalSuperblock(dest)
  const { mtimeNs, ctimeNs } = await stat(`${dest}.part`, { bigint: true })
  const noted = {
    ...sb,
    checked: { through, part: { mtimeNs, ctimeNs } },
    pageCount: Math.ceil(sb.leafCount / PAGE_BITS),
  }
  const fh = await open(journalPath(dest), 'r+')
  try {
    await fh.write(encodeSuperblock(noted), 0, BLOCK, 0)
  } finally {
    await fh.close()
  }
}
