import type { VerifiedLeafTable } from '../descriptor/verified.ts'
import { type FetchLimits, fetchLeafPages } from './fetch-context.ts'
import type { LeafStore } from './partial-seed.ts'
import type { PeerLink } from './peer-link.ts'

/**
 * Makes the verified leaf pages of chunks [start, end) available in `local.table`, asking live
 * peers in turn (complete ones first: a partial seeder holds only the pages of chunks it has,
 * so it is asked for one page at a time, a complete one for `pagesPerRequest`). Each page is
 * proved against the root on arrival (a bad proof is the peer's error, reported through
 * `onError`), and kept in the leaf sidecar, when there is one, so this peer can serve it on
 * (partial seeding). A page no live peer can give stays missing: its chunks are simply not
 * picked yet.
 */
export async function ensurePages(
  window: { start: number; end: number },
  links: readonly PeerLink[],
  local: { readonly table: VerifiedLeafTable; readonly leaves: LeafStore | undefined },
  ctx: { readonly cid: Uint8Array; readonly limits: FetchLimits },
  opts: { signal: AbortSignal; onError: (link: PeerLink, err: unknown) => void },
): Promise<void> {
  const { table } = local
  if (window.start >= window.end) return
  for (let page = table.pageOf(window.start); page <= table.pageOf(window.end - 1); page++) {
    if (table.has(page)) continue
    const up = links.filter((l) => l.up)
    up.sort((a, b) => Number(b.have === 'all') - Number(a.have === 'all'))
    for (const link of up) {
      if (await fetchPages(link, page, local, ctx, opts)) break
    }
  }
}

async function fetchPages(
  link: PeerLink,
  page: number,
  local: { readonly table: VerifiedLeafTable; readonly leaves: LeafStore | undefined },
  ctx: { readonly cid: Uint8Array; readonly limits: FetchLimits },
  opts: { signal: AbortSignal; onError: (link: PeerLink, err: unknown) => void },
): Promise<boolean> {
  const { table, leaves } = local
  const got: Array<{ page: number; entries: Uint8Array; proof: Uint8Array[] }> = []
  try {
    await fetchLeafPages(
      { session: link.session!, cid: ctx.cid, secret: link.provider.secret, limits: ctx.limits },
      table,
      page,
      opts.signal,
      {
        count: link.have === 'all' ? ctx.limits.pagesPerRequest : 1,
        ...(leaves === undefined
          ? {}
          : {
              onPage: (p, entries, proof) =>
                got.push({ page: p, entries: new Uint8Array(entries), proof: [...proof] }),
            }),
      },
    )
  } catch (err) {
    if (opts.signal.aborted) throw err
    opts.onError(link, err)
    return false
  }
  if (leaves !== undefined) for (const g of got) await leaves.put(g.page, g)
  return table.has(page)
}
