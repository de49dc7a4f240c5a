/**
 * Every failure haul reports is a `HaulError` subclass: one class per condition,
 * a fixed `name`, a stable string `code` for programs, and a stable numeric
 * `wireCode` that travels in protocol `error` frames so both peers agree on
 * what went wrong. Messages say what the user can do next.
 *
 * Wire codes are part of the protocol: never renumber one, only add.
 */

import { escapeControls } from './util/safe-text.ts'

export const WIRE_CODES = {
  INTERNAL: 1,
  INVALID_ARGUMENT: 2,
  ABORTED: 3,
  TIMEOUT: 4,
  CONFIG_INVALID: 5,
  // content and verification
  DESCRIPTOR_INVALID: 10,
  UNSUPPORTED_VERSION: 11,
  PROOF_INVALID: 12,
  CHUNK_VERIFICATION_FAILED: 13,
  CONTENT_NOT_FOUND: 14,
  CONTENT_CHANGED: 15,
  ROOT_MISMATCH: 16,
  /** A partial seeder was asked for a chunk (or leaf page) it has not verified yet. */
  CHUNK_UNAVAILABLE: 17,
  /** A collection's manifest (or a name from a ticket) breaks the path rules: nothing was written. */
  MANIFEST_INVALID: 18,
  /** The sender, restarted, does not serve this content again yet (indexing its file, or starting): ask again soon. */
  CONTENT_PREPARING: 19,
  // protocol
  FRAME_TOO_LARGE: 20,
  FRAME_TRUNCATED: 21,
  UNKNOWN_MESSAGE_TYPE: 22,
  PROTOCOL_VIOLATION: 23,
  CODEC_UNSUPPORTED: 24,
  DECOMPRESSION_FAILED: 25,
  // network
  PEER_UNREACHABLE: 30,
  STREAM_CLOSED: 31,
  TOO_MANY_REQUESTS: 32,
  RETRIES_EXHAUSTED: 33,
  /** A multi-peer fetch needs a chunk that no live provider holds. */
  NO_PROVIDER: 34,
  /** A relay's circuit has too few bytes left (its data limit) to carry the next chunk whole. */
  CIRCUIT_LIMIT: 35,
  /** A peer reported a failure on its side, or a code that is not a peer's to send (see errorFromWire). */
  PEER_FAILED: 36,
  // tickets
  TICKET_INVALID: 40,
  // disk
  NO_SPACE: 50,
  PERMISSION_DENIED: 51,
  DESTINATION_INVALID: 52,
  /** Another fetch (in this process or another) is writing the same destination. */
  DESTINATION_BUSY: 53,
  /** The destination holds other data and the caller did not ask to overwrite it. */
  DESTINATION_EXISTS: 54,
  /** The file to publish or index is missing, or is not a regular file. */
  SOURCE_INVALID: 55,
  /** A file is larger than this process may write (`ulimit -f`) or than its filesystem holds (EFBIG). */
  FILE_TOO_LARGE: 56,
  // memory and other resources
  BUDGET_EXCEEDED: 60,
  /** The process is out of file descriptors (EMFILE, ENFILE). */
  TOO_MANY_OPEN_FILES: 61,
} as const

export type ErrorCode = keyof typeof WIRE_CODES

const CODE_BY_WIRE = new Map<number, ErrorCode>(
  Object.entries(WIRE_CODES).map(([k, v]) => [v, k as ErrorCode]),
)

/** The name of a wire code, or undefined for a code this version does not know. */
export function codeFromWire(wire: number): ErrorCode | undefined {
  return CODE_BY_WIRE.get(wire)
}

export abstract class HaulError extends Error {
  abstract readonly code: ErrorCode
  get wireCode(): number {
    return WIRE_CODES[this.code]
  }
}

export function isHaulError(err: unknown): err is HaulError {
  return err instanceof HaulError
}

/**
 * `err` as a HaulError: itself, ABORTED for the platform's abort (a DOMException or Error named
 * `AbortError`, from a Node API given the caller's signal), INTERNAL for anything else.
 */
export function asHaulError(err: unknown): HaulError {
  if (isHaulError(err)) return err
  const open = tooManyOpenFiles(err)
  if (open !== undefined) return open
  if (err instanceof Error && err.name === 'AbortError') return new AbortedError(undefined, { cause: err })
  return new InternalError(err instanceof Error ? err.message : String(err), { cause: err })
}

export class InternalError extends HaulError {
  override readonly name = 'InternalError'
  readonly code = 'INTERNAL'
}
export class InvalidArgumentError extends HaulError {
  override readonly name = 'InvalidArgumentError'
  readonly code = 'INVALID_ARGUMENT'
}
export class AbortedError extends HaulError {
  override readonly name = 'AbortedError'
  readonly code = 'ABORTED'
  constructor(message = 'the operation was cancelled', options?: ErrorOptions) {
    super(message, options)
  }
}
export class TimeoutError extends HaulError {
  override readonly name = 'TimeoutError'
  readonly code = 'TIMEOUT'
}
export class ConfigInvalidError extends HaulError {
  override readonly name = 'ConfigInvalidError'
  readonly code = 'CONFIG_INVALID'
}

export class DescriptorInvalidError extends HaulError {
  override readonly name = 'DescriptorInvalidError'
  readonly code = 'DESCRIPTOR_INVALID'
}
export class UnsupportedVersionError extends HaulError {
  override readonly name = 'UnsupportedVersionError'
  readonly code = 'UNSUPPORTED_VERSION'
}
export class ProofInvalidError extends HaulError {
  override readonly name = 'ProofInvalidError'
  readonly code = 'PROOF_INVALID'
}
export class ChunkVerificationError extends HaulError {
  override readonly name = 'ChunkVerificationError'
  readonly code = 'CHUNK_VERIFICATION_FAILED'
}
export class ContentNotFoundError extends HaulError {
  override readonly name = 'ContentNotFoundError'
  readonly code = 'CONTENT_NOT_FOUND'
}
export class ContentChangedError extends HaulError {
  override readonly name = 'ContentChangedError'
  readonly code = 'CONTENT_CHANGED'
}
export class RootMismatchError extends HaulError {
  override readonly name = 'RootMismatchError'
  readonly code = 'ROOT_MISMATCH'
}

/**
 * The content asked for is what a file (or folder) the sender is indexing again held when it last
 * published it (a sender restarted on it): served once the index shows it unchanged, CONTENT_CHANGED
 * if it changed. Also what a sender with a data folder says, for a while after it starts, of what
 * its earlier runs published and its application has not published again yet. Transient: the
 * receiver asks again.
 */
export class ContentPreparingError extends HaulError {
  override readonly name = 'ContentPreparingError'
  readonly code = 'CONTENT_PREPARING'
}

/** A partial seeder does not hold the chunk or leaf page asked for: ask another peer. */
export class ChunkUnavailableError extends HaulError {
  override readonly name = 'ChunkUnavailableError'
  readonly code = 'CHUNK_UNAVAILABLE'
}

export class ManifestInvalidError extends HaulError {
  override readonly name = 'ManifestInvalidError'
  readonly code = 'MANIFEST_INVALID'
}
export class FrameTooLargeError extends HaulError {
  override readonly name = 'FrameTooLargeError'
  readonly code = 'FRAME_TOO_LARGE'
}
export class FrameTruncatedError extends HaulError {
  override readonly name = 'FrameTruncatedError'
  readonly code = 'FRAME_TRUNCATED'
}
export class UnknownMessageTypeError extends HaulError {
  override readonly name = 'UnknownMessageTypeError'
  readonly code = 'UNKNOWN_MESSAGE_TYPE'
}
export class ProtocolViolationError extends HaulError {
  override readonly name = 'ProtocolViolationError'
  readonly code = 'PROTOCOL_VIOLATION'
}
export class CodecUnsupportedError extends HaulError {
  override readonly name = 'CodecUnsupportedError'
  readonly code = 'CODEC_UNSUPPORTED'
}
export class DecompressionError extends HaulError {
  override readonly name = 'DecompressionError'
  readonly code = 'DECOMPRESSION_FAILED'
}

export class PeerUnreachableError extends HaulError {
  override readonly name = 'PeerUnreachableError'
  readonly code = 'PEER_UNREACHABLE'
  /**
   * Another peer answers at every address dialed (it proved another identity): the peer named is
   * gone from there, restarted without its data folder or replaced, rather than away a moment.
   */
  readonly answeredBy: string | undefined
  constructor(message?: string, options?: ErrorOptions, answeredBy?: string) {
    super(message, options)
    this.answeredBy = answeredBy
  }
}
export class StreamClosedError extends HaulError {
  override readonly name = 'StreamClosedError'
  readonly code = 'STREAM_CLOSED'
}
/** A failure from a stream's machinery as a HaulError: a HaulError as it is, anything else STREAM_CLOSED. */
export function asStreamFailure(err: unknown): HaulError {
  return isHaulError(err) ? err : new StreamClosedError(`stream failed: ${String(err)}`, { cause: err })
}

export class TooManyRequestsError extends HaulError {
  override readonly name = 'TooManyRequestsError'
  readonly code = 'TOO_MANY_REQUESTS'
  /**
   * The peer is reached only through a relay that has no circuit free now: one frees up when
   * another transfer through it ends, however long that takes (retried as an outage is).
   */
  readonly relayFull: boolean
  constructor(message?: string, options?: ErrorOptions & { relayFull?: boolean }) {
    super(message, options)
    this.relayFull = options?.relayFull === true
  }
}
/**
 * The relay that carries this connection limits each circuit's bytes, and what is left cannot
 * carry the next chunk whole. The sender says so before starting the chunk (the relay would cut
 * it off midway); the receiver drops the circuit and goes on over a new one.
 */
export class CircuitLimitError extends HaulError {
  override readonly name = 'CircuitLimitError'
  readonly code = 'CIRCUIT_LIMIT'
}
/**
 * A peer's `error` frame carried a failure on its side (its storage, its files, a bug: codes whose
 * meaning here would be about this machine, such as NO_SPACE) or a code that is not a peer's to
 * send (ABORTED, TICKET_INVALID, one this version does not know). `remoteWireCode` is the code it
 * sent. Not retried: the transfer fails, or a multi-peer fetch drops that peer.
 */
export class PeerFailedError extends HaulError {
  override readonly name = 'PeerFailedError'
  readonly code = 'PEER_FAILED'
  readonly remoteWireCode: number | undefined
  constructor(message?: string, options?: ErrorOptions, remoteWireCode?: number) {
    super(message, options)
    this.remoteWireCode = remoteWireCode
  }
}
/** A transfer gave up reconnecting; `cause` is the last failure. Its part file and journal stay for a resume. */
export class RetriesExhaustedError extends HaulError {
  override readonly name = 'RetriesExhaustedError'
  readonly code = 'RETRIES_EXHAUSTED'
}

/** A multi-peer fetch needs chunks no live provider holds (all dropped, gone, or partial without them). */
export class NoProviderError extends HaulError {
  override readonly name = 'NoProviderError'
  readonly code = 'NO_PROVIDER'
}

export class TicketInvalidError extends HaulError {
  override readonly name = 'TicketInvalidError'
  readonly code = 'TICKET_INVALID'
}

export class NoSpaceError extends HaulError {
  override readonly name = 'NoSpaceError'
  readonly code = 'NO_SPACE'
}
export class PermissionDeniedError extends HaulError {
  override readonly name = 'PermissionDeniedError'
  readonly code = 'PERMISSION_DENIED'
}
export class DestinationInvalidError extends HaulError {
  override readonly name = 'DestinationInvalidError'
  readonly code = 'DESTINATION_INVALID'
}

export class DestinationBusyError extends HaulError {
  override readonly name = 'DestinationBusyError'
  readonly code = 'DESTINATION_BUSY'
  /** Who writes the destination, for a message: a process (its host, since when) or another fetch. */
  readonly holder: string
  constructor(message?: string, options?: ErrorOptions & { holder?: string }) {
    super(message, options)
    this.holder = options?.holder ?? 'another fetch'
  }
}
export class DestinationExistsError extends HaulError {
  override readonly name = 'DestinationExistsError'
  readonly code = 'DESTINATION_EXISTS'
}

export class SourceInvalidError extends HaulError {
  override readonly name = 'SourceInvalidError'
  readonly code = 'SOURCE_INVALID'
}
/**
 * A write went past the largest file this process may write (its file-size limit, `ulimit -f`)
 * or its filesystem holds (FAT32: 4 GiB): EFBIG. Freeing space would not help, so it is not
 * NO_SPACE.
 */
export class FileTooLargeError extends HaulError {
  override readonly name = 'FileTooLargeError'
  readonly code = 'FILE_TOO_LARGE'
}

export class BudgetExceededError extends HaulError {
  override readonly name = 'BudgetExceededError'
  readonly code = 'BUDGET_EXCEEDED'
}
export class TooManyOpenFilesError extends HaulError {
  override readonly name = 'TooManyOpenFilesError'
  readonly code = 'TOO_MANY_OPEN_FILES'
}

/**
 * What TOO_MANY_OPEN_FILES for this process's limit (EMFILE) says to do. `bound` is how the
 * user sets `server.maxOpenFiles` (the CLI names its flag; null where it cannot be set).
 */
export function openFilesAdvice(bound: string | null = '`server.maxOpenFiles`'): string {
  const raise = 'raise the limit of open files (`ulimit -n`)'
  return bound === null ? raise : `${raise}, or lower ${bound} and the files this process opens besides haul`
}

/**
 * TOO_MANY_OPEN_FILES for a Node error that is EMFILE (this process's limit) or ENFILE (the
 * system's), saying what to do; undefined for any other error. `what` names the file, if known.
 */
export function tooManyOpenFiles(err: unknown, what?: string): TooManyOpenFilesError | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code !== 'EMFILE' && code !== 'ENFILE') return undefined
  const limit =
    code === 'EMFILE'
      ? openFilesAdvice()
      : "raise the system's limit of open files (fs.file-max), or close other programs' files"
  return new TooManyOpenFilesError(
    `${what === undefined ? '' : `${what}: `}too many open files (${code}): ${limit}`,
    { cause: err },
  )
}

/**
 * The codes a peer's `error` frame keeps: failures of the exchange itself, which mean the same on
 * both sides (what src/serve/ raises about a request, a refusal, the peer's content). Every other
 * code would say something about this machine or its caller (ABORTED is only ever the caller's
 * cancel, NO_SPACE this disk, TICKET_INVALID the ticket given here) and becomes PEER_FAILED.
 */
const PEER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'TIMEOUT',
  'UNSUPPORTED_VERSION',
  'CONTENT_NOT_FOUND',
  'CONTENT_CHANGED',
  'CONTENT_PREPARING',
  'CHUNK_UNAVAILABLE',
  'FRAME_TOO_LARGE',
  'FRAME_TRUNCATED',
  'UNKNOWN_MESSAGE_TYPE',
  'PROTOCOL_VIOLATION',
  'CODEC_UNSUPPORTED',
  'DECOMPRESSION_FAILED',
  'STREAM_CLOSED',
  'TOO_MANY_REQUESTS',
  'CIRCUIT_LIMIT',
])

/**
 * Remote peers report failures by wire code; this rebuilds the matching local class for the codes
 * a peer may send (PEER_CODES), and PeerFailedError for any other, known or not, its message
 * naming the code the peer sent. The peer's message is data, not terminal input: its control
 * characters are escaped here, so every consumer (the CLI, logs, an embedding application) gets
 * text that cannot steer a terminal.
 */
export function errorFromWire(wire: number, message: string): HaulError {
  const code = codeFromWire(wire)
  const text = escapeControls(message)
  if (code !== undefined && PEER_CODES.has(code)) return new ERROR_CLASSES[code](`remote peer: ${text}`)
  return new PeerFailedError(`remote peer (${code ?? `code ${wire}`}): ${text}`, undefined, wire)
}

export type HaulErrorClass = new (message?: string, options?: ErrorOptions) => HaulError

/**
 * The class of a code, for rebuilding an error that crossed a boundary as data (a peer's error
 * frame, the engine thread's replies); InternalError for a code this version does not know.
 */
export function errorClassOf(code: string): HaulErrorClass {
  return Object.hasOwn(ERROR_CLASSES, code) ? ERROR_CLASSES[code as ErrorCode] : InternalError
}

const ERROR_CLASSES: Record<ErrorCode, HaulErrorClass> = {
  INTERNAL: InternalError,
  INVALID_ARGUMENT: InvalidArgumentError,
  ABORTED: AbortedError,
  TIMEOUT: TimeoutError,
  CONFIG_INVALID: ConfigInvalidError,
  DESCRIPTOR_INVALID: DescriptorInvalidError,
  UNSUPPORTED_VERSION: UnsupportedVersionError,
  PROOF_INVALID: ProofInvalidError,
  CHUNK_VERIFICATION_FAILED: ChunkVerificationError,
  CONTENT_NOT_FOUND: ContentNotFoundError,
  CONTENT_CHANGED: ContentChangedError,
  ROOT_MISMATCH: RootMismatchError,
  CHUNK_UNAVAILABLE: ChunkUnavailableError,
  MANIFEST_INVALID: ManifestInvalidError,
  CONTENT_PREPARING: ContentPreparingError,
  FRAME_TOO_LARGE: FrameTooLargeError,
  FRAME_TRUNCATED: FrameTruncatedError,
  UNKNOWN_MESSAGE_TYPE: UnknownMessageTypeError,
  PROTOCOL_VIOLATION: ProtocolViolationError,
  CODEC_UNSUPPORTED: CodecUnsupportedError,
  DECOMPRESSION_FAILED: DecompressionError,
  PEER_UNREACHABLE: PeerUnreachableError,
  STREAM_CLOSED: StreamClosedError,
  TOO_MANY_REQUESTS: TooManyRequestsError,
  RETRIES_EXHAUSTED: RetriesExhaustedError,
  NO_PROVIDER: NoProviderError,
  CIRCUIT_LIMIT: CircuitLimitError,
  PEER_FAILED: PeerFailedError,
  TICKET_INVALID: TicketInvalidError,
  NO_SPACE: NoSpaceError,
  PERMISSION_DENIED: PermissionDeniedError,
  DESTINATION_INVALID: DestinationInvalidError,
  DESTINATION_BUSY: DestinationBusyError,
  DESTINATION_EXISTS: DestinationExistsError,
  SOURCE_INVALID: SourceInvalidError,
  FILE_TOO_LARGE: FileTooLargeError,
  BUDGET_EXCEEDED: BudgetExceededError,
  TOO_MANY_OPEN_FILES: TooManyOpenFilesError,
}
