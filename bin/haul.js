#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=100
// The flags are ENGINE_NODE_FLAGS (src/process-flags.ts, where the measurements are; a test keeps
// the two equal). --max-semi-space-size=1: chunk buffers live outside the JS heap and what the
// heap holds per chunk is small and short-lived; a small young generation collects it early,
// so resident memory stays flat over a long run (measured: haul index of 1 vs 4 GiB,
// 110 vs 118 MB peak RSS at 2 MiB, against 120 vs 142 MB with V8's default 3 x 16 MiB
// nursery). 1 MiB against 2: 1 GiB transfers 198–216 vs 150–205 MB/s and sender peak
// RSS 164–167 vs 176–180 MB (bench/transfer.ts, interleaved; 8 MiB was worse still).
// --heap-growing-percent=100: the old generation doubles between full GCs (see process-flags.ts).
// The CLI is compiled to dist/ and bundled into dist/bundle/ (haul.js and the chunks it imports)
// by `npm run build` (run by `npm ci`, and by `prepare` when the package is installed from a
// checkout: `npm install -g <checkout>`); a few files load faster than the ~900 they are made of
// (scripts/bundle.mjs).
//
// This file runs on whatever `node` is first on PATH, and stays plain JavaScript that old
// versions parse. haul needs Node >= 22; an older node (a system Node 20) re-runs this file
// under the Node 24 the package pins (the `node` devDependency, in node_modules/node of a
// checkout or of a project that installed it), passing on the flags, the arguments, the exit
// code and Ctrl-C / SIGTERM / SIGHUP. Without it, it says what to do.
const MIN_MAJOR = 22
const [major] = process.versions.node.split('.').map(Number)
if (major >= MIN_MAJOR) {
  // Re-run by the launcher below (the IPC channel marks its own child; what this process starts
  // sees neither): should the launcher die, SIGKILL included, this process dies with it at once,
  // as one program would, so nothing it held (the destination's lock) outlives the command a
  // script killed. A launcher killed before this line ran left this process to another parent:
  // it is gone already.
  const launcher = process.env.HAUL_LAUNCHER_PID
  delete process.env.HAUL_LAUNCHER_PID
  if (process.channel !== undefined && launcher !== undefined) {
    if (launcher !== String(process.ppid) || !process.connected) process.kill(process.pid, 'SIGKILL')
    process.channel.unref()
    process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'))
  }
  // Node's compile cache keeps the bundle's compiled code between runs (in os.tmpdir(), or where
  // NODE_COMPILE_CACHE says; NODE_DISABLE_COMPILE_CACHE=1 turns it off), as TypeScript's tsc does:
  // a small `haul get` started 30–60 ms sooner with it (scripts/bundle.mjs has the figures).
  const { enableCompileCache } = await import('node:module')
  enableCompileCache?.()
  await import('../dist/bundle/haul.js')
} else {
  await runPinned()
}

async function runPinned() {
  const { spawn } = await import('node:child_process')
  const { accessSync, constants } = await import('node:fs')
  const { createRequire } = await import('node:module')
  const { constants: os } = await import('node:os')
  const { dirname, join } = await import('node:path')
  const { fileURLToPath } = await import('node:url')
  const self = fileURLToPath(import.meta.url)
  const pkgDir = dirname(dirname(self))
  const exe = process.platform === 'win32' ? 'node.exe' : 'node'
  const candidates = [join(pkgDir, 'node_modules', 'node', 'bin', exe)]
  try {
    // Hoisted into a project that depends on both haul and node.
    const pkg = createRequire(import.meta.url).resolve('node/package.json')
    candidates.push(join(dirname(pkg), 'bin', exe))
  } catch {}
  const runnable = (p) => {
    try {
      accessSync(p, constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  // Already re-run once: the pinned runtime is not what it should be; never loop.
  const pinned = process.env.HAUL_PINNED_NODE === undefined ? candidates.find(runnable) : undefined
  if (pinned === undefined) {
    process.stderr.write(
      `haul needs Node.js ${MIN_MAJOR} or newer; this is Node.js ${process.versions.node} (${process.execPath}),\n` +
        `and the Node.js 24 that haul pins is not installed beside it (${candidates[0]}). Either:\n` +
        '  - put Node.js 22 or newer first on PATH (e.g. `nvm install 24`), then run haul again; or\n' +
        '  - install haul from a checkout where `npm ci` has run (its node_modules holds the pinned\n' +
        '    Node 24):  npm install -g /path/to/haul-checkout\n',
    )
    process.exit(1)
  }
  // The IPC channel tells the child when this process is gone, however it died (see above).
  const child = spawn(pinned, [...process.execArgv, self, ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, HAUL_PINNED_NODE: pinned, HAUL_LAUNCHER_PID: String(process.pid) },
  })
  child.channel?.unref()
  // A terminal's Ctrl-C reaches both processes; the CLI takes a repeated one calmly (src/cli/signals.ts).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
  child.once('error', (err) => {
    process.stderr.write(`haul: could not run the pinned Node.js (${pinned}): ${err.message}\n`)
    process.exit(1)
  })
  child.once('exit', (code, signal) => process.exit(code ?? 128 + (os.signals[signal] ?? 1)))
}
