import { defaultText } from '../engine/config/docs.ts'
import { engineDefaults } from '../engine/config.ts'
import { defaultRelayOptions } from '../net/defaults.ts'
import type { Command } from './args.ts'

export const EXIT_CODES = `Exit codes: 0 done (send, seed, get --provide: stopped by Ctrl-C, SIGTERM or SIGHUP once serving),
1 failed, 2 usage error, 130 interrupted (Ctrl-C, SIGTERM or SIGHUP; get: run it again to resume),
141 stopped because its output was closed (| head; stopped as Ctrl-C stops it).`

export const USAGE = `haul — move very large files and folders between libp2p peers, verified chunk by chunk

Usage:
  haul send <path>...    publish a file, a folder or several paths and serve until Ctrl-C,
                         showing who fetches what
  haul get <ticket>...   fetch what a ticket names (several tickets of one content: from all
                         their peers at once), resuming an earlier run
  haul seed <dest>       serve what an interrupted multi-peer get left in <dest>.part, or a
                         whole file, until Ctrl-C
  haul index <file>      only build the file's descriptor (content id, chunks)
  haul relay             relay for senders that receivers cannot reach directly (--relay)
  haul loadtest ...      many transfers between engine processes (haul loadtest --help)

  haul <command> --help  that command's options and examples
  haul --version

Descriptors go in the data folder (--data-dir, default $XDG_CACHE_HOME/haul, ~/.cache/haul),
never beside the files sent: sending an unchanged file or folder again does not read it.

${EXIT_CODES}
`

/** The listen default as a shell user writes it: each address, with no quotes or brackets. */
const LISTEN_DEFAULT = engineDefaults.listen.join(' and ')

const ENGINE_FLAGS = `  --memory <MiB>          memory budget for chunk buffers (default ${defaultText('memoryBudget')})
  --workers <n>           worker threads (default ${defaultText('workers')})
  --json                  newline-delimited JSON events instead of human output`

const METRICS_FLAG = `  --metrics <host:port>   serve Prometheus metrics at http://<host:port>/metrics (e.g.
                          127.0.0.1:9464; port 0 picks one, printed); see docs/METRICS.md`

const DHT_FLAGS = `  --bootstrap <multiaddr> join the DHT through this peer (…/p2p/<peer id>: any haul on it),
                          repeatable; implies --dht
  --dht                   run the DHT (no public bootstrap is ever contacted): with no
                          --bootstrap this peer starts one that others join`

const OPEN_FILES_FLAG = `  --max-open-files <n>    files held open at once for serving (default ${defaultText('server.maxOpenFiles')});
                          the least recently read are closed beyond it`

/** Continues a flag's line: the form of a rate. */
const RATES = `in bytes per second:
                          500k, 10M (10 MiB/s), 1.5G (binary units)`

const SERVING_FLAGS = `  --listen <multiaddr>    listen address, repeatable (default ${LISTEN_DEFAULT})
  --data-dir <dir>        keep the identity, port, secrets and descriptors here: restarted,
                          the sender listens where it did (port free) and answers its old ticket
                          (CONTENT_CHANGED if the file changed while it was stopped)
  --upload-limit <rate>   upload limit, all peers together, ${RATES}
${OPEN_FILES_FLAG}
  --relay <multiaddr>     reserve a slot on this relay (the address haul relay prints),
                          repeatable: receivers that cannot reach this machine come through
                          it, and a hole punch may then make the connection direct
  --public                serve to anyone who knows the content id; without it only holders
                          of the ticket (it carries a secret) get an answer
${DHT_FLAGS}
                          Announced content is public: its content id is all a receiver needs`

export const HELP: Record<Command, string> = {
  send: `haul send <file | folder | paths...> — index, print the ticket, serve until Ctrl-C or SIGTERM

One file is sent under its name. A folder, or several paths, is sent as one collection: every
file's bytes in one content, with a manifest of paths, sizes and modes. Links inside a folder
are sent as links when they point inside it; links leaving it, sockets, FIFOs and devices are
skipped (and listed). The receiver recreates the folder with haul get.

The ticket carries a secret made for this publish: only its holders are served; anyone else
gets the answer for content this peer does not have. With --data-dir the secret is kept, so
a restarted sender answers the same ticket.

Shows each peer that connects (its id and address), what it fetches with bytes served and
rate, a line when its transfer ends, a line when the slot on a relay is lost and held again,
and on exit the bytes served, peers and transfers, and how many transfers were in progress
and cut off.

Options:
${SERVING_FLAGS}
  --chunking <c>          fixed:1m (default), fixed:2m, fixed:4m, fixed:8m, cdc, cdc:<avg>, cdc:MIN:AVG:MAX
                          (chunks of at most 8 MiB, what a receiver takes)
${METRICS_FLAG}
${ENGINE_FLAGS}

Examples:
  haul send ./big.iso
  haul send ./photos                   the folder, as ./photos on the receiver
  haul send ./a.txt ./b.txt            two files, one ticket
  haul send ./big.iso --public         anyone who knows its content id may fetch it
  haul send ./big.iso --listen /ip4/0.0.0.0/tcp/4001 --data-dir ~/.haul --upload-limit 20M
  haul send ./big.iso --relay /ip4/203.0.113.7/tcp/4003/p2p/12D3KooW…
  haul send ./big.iso --dht            announce it; receivers: haul get <content id> --bootstrap …

${EXIT_CODES}
`,
  get: `haul get <ticket>... [-o <path>] — fetch what the ticket names; run it again after an
interruption and it fetches only what is missing. A ticket naming several peers, or several
tickets of the same content, fetch from all those peers at once.

haul get <content id> --bootstrap <multiaddr> finds the providers of a file on the DHT (the
content id haul send --dht prints), fetches from several at once, and keeps looking for more
while it runs.

Options:
  -o, --out <path>        a file: where to write it, or the folder to put it in (ending in /,
                          or an existing folder); default ./<its name>. A folder: the folder
                          to recreate it as, or the folder to put it in when ending in /;
                          default ./<its name>
  --force                 replace files at the destination that hold other data
  --symlinks              folders: create the links the folder holds (each points inside it)
  --no-fsync              folders: leave the files to the kernel's writeback, as cp does, instead
                          of syncing them before the end (faster for many small files; a power
                          cut just after can lose them)
  --wait                  if another haul is writing the destination (or seeding its .part),
                          wait for it
  --no-compression        ask providers for plain chunks: for a receiver whose cores, not its
                          link, are the limit (a fast LAN, a busy machine)
  --max-rate <rate>       this fetch's download limit, ${RATES}
  --priority <p>          low, normal (default) or high: its share of the download bandwidth
                          when fetches compete
  --listen <multiaddr>    listen address, repeatable (default ${LISTEN_DEFAULT})
${DHT_FLAGS}
  --provide               with the DHT: serve the file and announce it once it is here (what
                          is verified already while it downloads), until Ctrl-C
  --data-dir <dir>        keep this peer's identity and port there: a get --provide run again
                          is reached at the address others were given
${OPEN_FILES_FLAG}
${METRICS_FLAG}
${ENGINE_FLAGS}

Examples:
  haul get haul1…                              the file or folder, under its own name here
  haul get haul1… -o ./copy.iso
  haul get haul1… -o ./downloads/              into a folder, under its own name
  haul get haul1…a haul1…b -o ./copy.iso      two senders of one file
  haul get haul1… -o ./copy.iso --max-rate 10M --json
  haul get b… --bootstrap /ip4/192.0.2.4/tcp/4001/p2p/12D3KooW… --provide

${EXIT_CODES}
`,
  seed: `haul seed <dest> — serve what a haul get left at <dest> (or <dest>.part), until Ctrl-C

A part file from an interrupted multi-peer get (several tickets, or a joined one) is served
as far as it is verified: receivers fetching with its ticket and others' take from it what it
has. While it serves, no haul get writes <dest> (one that tries is DESTINATION_BUSY, or
waits with --wait), and it does not seed a part file a running get writes. A whole file is
simply published, as haul send does.

Options:
${SERVING_FLAGS}
  --chunking <c>          for a whole file: as haul send
${METRICS_FLAG}
${ENGINE_FLAGS}

Examples:
  haul seed ./copy.iso.part
  haul seed ./copy.iso --listen /ip4/0.0.0.0/tcp/4002

${EXIT_CODES}
`,
  index: `haul index <file> — build the descriptor only: content id, chunk count, throughput

Options:
  -o, --out <descriptor>  where to write the descriptor (default: in the data folder); never the
                          file indexed itself
  --force                 replace a file already at -o (refused otherwise)
  --data-dir <dir>        the data folder (default $XDG_CACHE_HOME/haul, ~/.cache/haul)
  --chunking <c>          fixed:1m (default), fixed:2m, fixed:4m, fixed:8m, cdc, cdc:<avg>, cdc:MIN:AVG:MAX
                          (chunks of at most 8 MiB, what a receiver takes)
${ENGINE_FLAGS}

Example:
  haul index ./big.iso --chunking cdc

${EXIT_CODES}
`,
  relay: `haul relay — relay for senders that receivers cannot reach directly, until Ctrl-C

A sender behind a NAT or firewall runs haul send --relay <this relay's address>: it reserves a
slot here, its ticket gains an address through the relay, and a receiver that cannot reach
the sender directly connects through it (a hole punch may then replace the relayed connection
with a direct one). The relay forwards Noise-encrypted bytes: it cannot read or change them.
Run it where both sides can reach it (a public address, or a network both can route to).

Bounds: at most --max-reservations senders hold a slot, at most --max-circuits relayed
connections at once, each holding at most two 4 MiB windows of data (memory grows with
circuits, not with bytes relayed).

Options:
  --listen <multiaddr>    listen address, repeatable (default ${LISTEN_DEFAULT})
  --data-dir <dir>        keep the relay's identity and port, so its address stays the same
  --max-reservations <n>  senders holding a slot at once (default ${defaultRelayOptions.maxReservations})
  --max-circuits <n>      relayed connections at once (default ${defaultRelayOptions.maxCircuits})
  --allow <peer id>       only these senders may reserve a slot, repeatable (default: any)
  --json                  newline-delimited JSON events instead of human output

Examples:
  haul relay --listen /ip4/0.0.0.0/tcp/4003 --data-dir ~/.haul-relay
  haul relay --allow 12D3KooW… --max-circuits 8

${EXIT_CODES}
`,
}
