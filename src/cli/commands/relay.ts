import { InvalidArgumentError } from '../../errors.ts'
import { ticketAddresses } from '../../net/addresses.ts'
import { defaultRelayOptions } from '../../net/defaults.ts'
import { parsePeer } from '../../net/peer-addr.ts'
import { checkEngineOptions, EXIT, type ParsedArgs, positiveInt } from '../args.ts'
import type { Output } from '../output.ts'
import { StopSignals } from '../signals.ts'

/**
 * `haul relay`: runs a circuit relay (src/net/relay.ts) until Ctrl-C or SIGTERM and prints the
 * address a sender passes as `--relay`. With `--data-dir` the address survives restarts.
 */
export async function runRelay(
  args: readonly string[],
  values: ParsedArgs['values'],
  out: Output,
): Promise<number> {
  if (args.length > 0) throw new InvalidArgumentError(`haul relay takes no arguments, got "${args[0]}"`)
  // The listen addresses follow the engine's rules (TCP): a bad one is a usage error naming --listen.
  checkEngineOptions(values.listen === undefined ? {} : { listen: values.listen })
  const { startRelay } = await import('../../net/relay.ts')
  const relay = await startRelay({
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values['max-reservations'] === undefined
      ? {}
      : { maxReservations: positiveInt('--max-reservations', values['max-reservations']) }),
    ...(values['max-circuits'] === undefined
      ? {}
      : { maxCircuits: positiveInt('--max-circuits', values['max-circuits']) }),
    ...(values.allow === undefined ? {} : { allow: values.allow.map(allowed) }),
  })
  const stop = new StopSignals()
  try {
    const addrs = ticketAddresses(relay.addresses, relay.peerId).map((a) => `${a}/p2p/${relay.peerId}`)
    out.event({ event: 'relay', peerId: relay.peerId, addresses: addrs })
    const limits = `at most ${values['max-reservations'] ?? defaultRelayOptions.maxReservations} senders and ${values['max-circuits'] ?? defaultRelayOptions.maxCircuits} relayed connections at once`
    out.human(
      `relaying (${limits}${values.allow === undefined ? '' : `, for ${values.allow.length} allowed peers`}); senders reach it with:\n\n${addrs.map((a) => `  haul send <file> --relay ${a}`).join('\n')}\n\nCtrl-C stops the relay.\n`,
    )
    await stop.wait()
    return EXIT.done
  } finally {
    stop.dispose()
    await relay.stop()
  }
}

/** An `--allow` value: a peer id, or a usage error naming the flag. */
function allowed(peer: string): string {
  try {
    parsePeer(peer)
  } catch {
    throw new InvalidArgumentError(`--allow takes a peer id (12D3KooW…), got ${JSON.stringify(peer)}`)
  }
  return peer
}
