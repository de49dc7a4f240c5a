/**
 * A haul peer in its own process, for tests that kill or restart one side for
 * real. Run as `node peer-child.ts '<json>'`:
 *   { "mode": "get", "ticket": "...", "dest": "...", "engine": {...EngineOptions} }
 *   { "mode": "send", "file": "...", "engine": {...EngineOptions} }
 * It reports newline-delimited JSON on stdout: `progress`, `retry`, `done`,
 * `error` (get) and `published` (send; then it serves until killed).
 */
import { createEngine, type EngineOptions, HaulError } from '../../src/index.ts'

type Config =
  | { mode: 'get'; ticket: string; dest: string; engine?: EngineOptions }
  | { mode: 'send'; file: string; engine?: EngineOptions }

const emit = (e: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`)
}

async function main(): Promise<number> {
  const config = JSON.parse(process.argv[2] ?? '{}') as Config
  const engine = await createEngine({ workers: 1, ...config.engine })
  if (config.mode === 'send') {
    const { ticket } = await engine.publish(config.file)
    emit({ event: 'published', ticket, peerId: engine.peerId, addrs: engine.addresses })
    await new Promise<void>((resolve) => process.once('SIGTERM', resolve))
    await engine.stop()
    return 0
  }
  try {
    const handle = engine.fetch(config.ticket, config.dest, {
      onProgress: (p) =>
        emit({
          event: 'progress',
          bytesDone: p.bytesDone,
          chunksDone: p.chunksDone,
          bytesArriving: p.bytesArriving,
        }),
      onRetry: (r) => emit({ event: 'retry', attempt: r.attempt, delayMs: r.delayMs, code: r.error.code }),
    })
    const result = await handle.result
    emit({ event: 'done', ...result })
    return 0
  } catch (err) {
    const e = err instanceof HaulError ? err : undefined
    emit({ event: 'error', code: e?.code ?? 'UNKNOWN', message: String((err as Error)?.message ?? err) })
    return 1
  } finally {
    await engine.stop()
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    emit({ event: 'error', code: (err as HaulError)?.code ?? 'UNKNOWN', message: String(err) })
    process.exit(1)
  },
)
