/**
 * Large-data descriptors: a header (what a content id names) plus a leaf table
 * served and verified page by page, so a 10 TiB descriptor is never held whole.
 *
 * @example
 * ```ts
 * // sender
 * const w = await DescriptorWriter.create(descriptorPathFor(file), { chunking: { kind: 'fixed', size: MiB } })
 * for (const entry of leaves) await w.append(entry)
 * const { cid } = await w.finish(size)
 * const reader = await DescriptorReader.open(descriptorPathFor(file))
 * const { entries, proof } = await reader.readPage(0)
 * // receiver, given reader.headerBytes from the peer and the cid from a ticket
 * const table = new VerifiedLeafTable(decodeHeaderForCid(headerBytes, cid))
 * table.acceptPage(0, entries, proof) // throws ProofInvalidError on tampering
 * table.get(0) // LeafEntry
 * ```
 * @packageDocumentation
 */
export { CID_STRING_LENGTH, cidFromString, cidToString, looksLikeCid } from './cid.ts'
export { descriptorPathFor, HEADER_SLOT_SIZE } from './file.ts'
export {
  CDC_HEADER_SIZE,
  chunkingProblem,
  contentId,
  DEFAULT_PAGE_SIZE,
  DESCRIPTOR_VERSION,
  type DescriptorHeader,
  decodeHeader,
  encodeHeader,
  FIXED_HEADER_SIZE,
  fixedLeafCount,
  headerProblem,
  isValidPageSize,
  leafCountBounds,
  MAX_CHUNK_SIZE,
  MAX_HEADER_SIZE,
  MAX_PAGE_SIZE,
  MIN_CDC_MIN_SIZE,
  MIN_FIXED_CHUNK_SIZE,
  MIN_PAGE_SIZE,
  pageCountOf,
  pageLeafRange,
} from './header.ts'
export { checkRows, decodePage, decodeRow, encodePage, encodeRow, ROW_SIZE } from './page.ts'
export { type DescriptorPage, DescriptorReader } from './reader.ts'
export {
  decodeHeaderForCid,
  defaultVerifiedLeafTableOptions,
  VerifiedLeafTable,
  type VerifiedLeafTableOptions,
  verifyVerifiedLeafTableOptions,
} from './verified.ts'
export {
  type DescriptorResult,
  DescriptorWriter,
  type DescriptorWriterOptions,
  defaultDescriptorWriterOptions,
  verifyDescriptorWriterOptions,
} from './writer.ts'
