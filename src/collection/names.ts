/**
 * The path rules every name from the network obeys before haul writes anything: a collection's
 * entry paths (manifest.ts) and the file name a ticket carries. A name is the sender's word, so
 * these rules are what keeps every write inside the destination folder. The sender applies the
 * same rules to what it publishes, so a folder that cannot arrive whole is refused at `send`.
 */
import { ManifestInvalidError } from '../errors.ts'

/** Bytes in one path component (the limit of Linux, macOS and Windows file systems). */
export const MAX_NAME_BYTES = 255
/** Bytes in a whole relative path (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096
/** Folders inside one another: deeper trees are refused (an absurd depth is an attack, not data). */
export const MAX_DEPTH = 128
/** The folder a collection fetch stages its work in, inside the destination (never a manifest entry). */
export const STAGING_NAME = '.haul-incoming'
/** In the staging folder: the collection (its manifest's content id, hex) whose fetch it holds. */
export const OWNER_NAME = 'manifest-id'
/** In the staging folder: the collection (hex) a fetch that failed CONTENT_CHANGED left staged. */
export const CHANGED_NAME = 'changed'

const enc = new TextEncoder()

/**
 * Why `name` cannot be one path component, or undefined when it can: non-empty, not `.` or `..`,
 * no `/`, no `\` (a separator on Windows), no NUL or other control character (they reach
 * terminals and scripts), at most MAX_NAME_BYTES of UTF-8.
 */
export function componentProblem(name: string): string | undefined {
  if (name.length === 0) return 'an empty name'
  if (name === '.' || name === '..') return `"${name}"`
  if (enc.encode(name).length > MAX_NAME_BYTES) return `a name over ${MAX_NAME_BYTES} bytes`
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c === 0) return 'a NUL character'
    if (c < 0x20 || c === 0x7f) return 'a control character'
    if (c === 0x2f) return 'a "/"'
    if (c === 0x5c) return 'a "\\"'
  }
  return undefined
}

/**
 * The components of a relative path (`/`-separated), each checked; throws ManifestInvalidError
 * naming the path for an absolute path, `..`, an empty component, a path over MAX_PATH_BYTES or
 * deeper than MAX_DEPTH.
 */
export function checkedPath(path: string): string[] {
  const shown = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path)
  if (path.startsWith('/')) throw new ManifestInvalidError(`refused ${shown}: an absolute path`)
  if (enc.encode(path).length > MAX_PATH_BYTES)
    throw new ManifestInvalidError(`refused ${shown}: a path over ${MAX_PATH_BYTES} bytes`)
  const parts = path.split('/')
  if (parts.length > MAX_DEPTH)
    throw new ManifestInvalidError(`refused ${shown}: deeper than ${MAX_DEPTH} folders`)
  for (const part of parts) {
    const problem = componentProblem(part)
    if (problem !== undefined) throw new ManifestInvalidError(`refused ${shown}: it contains ${problem}`)
  }
  // In any case: where the file system folds case, `.HAUL-INCOMING` is the staging folder.
  if (foldedKey(parts[0]!) === STAGING_NAME)
    throw new ManifestInvalidError(`refused ${shown}: ${STAGING_NAME} is where haul stages a fetch`)
  return parts
}

/**
 * A name fit to write a received file under: the sender's `name` when it passes the component
 * rules, else undefined (the caller falls back to a name of its own).
 */
export function safeName(name: string | undefined): string | undefined {
  return name === undefined || nameProblem(name) !== undefined ? undefined : name
}

/** Why a receiver would not write a file under `name` (see safeName), in words; undefined when it would. */
export function nameProblem(name: string): string | undefined {
  const problem = componentProblem(name)
  if (problem !== undefined) return `it has ${problem}`
  if (foldedKey(name) === STAGING_NAME) return `it is ${STAGING_NAME}, where haul stages a fetch`
  return undefined
}

/**
 * The key under which two names are the same file on a case-insensitive file system (macOS,
 * Windows, ext4 with casefold): Unicode NFC, then lower case.
 */
export function foldedKey(path: string): string {
  return path.normalize('NFC').toLowerCase()
}
