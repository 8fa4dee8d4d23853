'use strict'
// Helpers for Porter's kafkajs end-to-end tests: a real `porter serve` on a free loopback port.
//
//   const { porterTest, kafkaFor } = require('./porter')
//   test('x', { timeout: 60_000 }, porterTest(async (t, porter) => {
//     const kafka = kafkaFor(porter)          // kafkajs client; its log is kept with the server's
//     porter.defer(() => producer.disconnect()) // at the end, before the server stops
//     ...
//     await porter.restart()                  // SIGTERM (must exit 0), start again on same dir+port
//   }))
//
// The binary is PORTER_BIN (default <repo>/target/debug/porter); a missing binary fails the test
// with instructions. Each server gets its own temp data dir and port, and is stopped when its test
// ends, pass, fail or timeout (and SIGKILLed if this process exits first). When a test does not
// finish successfully, the tail of the server log and of the kafkajs log go to stderr.
// PORTER_TEST_VERBOSE=1 reports how long each waitFor() waited.
// Every server also gets a free loopback AMQP 0-9-1 port (porter.amqpPort, porter.amqpUrl, passed as
// --amqp-listen) and startup waits for it too, once the binary has that flag; the AMQP tests use
// ./amqp.js on top of this.

const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')
const { Kafka, logLevel } = require('kafkajs')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const PORTER_BIN = process.env.PORTER_BIN || path.join(REPO_ROOT, 'target', 'debug', 'porter')

// Startup is a process exec plus log recovery of a small data dir; 10 s is generous.
const READY_MS_MAX = 10_000
// Graceful shutdown drains connections and flushes logs; bounded by the server's own deadline.
const SHUTDOWN_MS_MAX = 30_000
const LOG_TAIL_LINES = 80
// A client's disconnect at the end of a test.
const CLEANUP_MS_MAX = 10_000

// Every live server process, so that an exiting test process never leaves one behind.
const live = new Set()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

function freeLoopbackPort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function portAccepts (port) {
  return new Promise(resolve => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const done = ok => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

// Whether `porter serve --help` lists `flag` (e.g. --amqp-listen); cached per flag.
const flagCache = new Map()
function binaryHasFlag (flag) {
  if (!flagCache.has(flag)) {
    const result = spawnSync(PORTER_BIN, ['serve', '--help'], { timeout: 10_000, encoding: 'utf8' })
    flagCache.set(flag, `${result.stdout || ''}${result.stderr || ''}`.includes(flag))
  }
  return flagCache.get(flag)
}

function tail (text, lines) {
  return text.split('\n').slice(-lines).join('\n')
}

class Porter {
  constructor (dataDir, logPath, port, amqpPort = null) {
    this.dataDir = dataDir
    this.logPath = logPath
    this.port = port
    this.bootstrap = `127.0.0.1:${port}`
    // AMQP 0-9-1 gateway, when the binary has it.
    this.amqpEnabled = binaryHasFlag('--amqp-listen')
    this.amqpPort = amqpPort
    this.amqpHost = '127.0.0.1'
    this.external = false
    this.child = null
    this.exit = null // promise of { code, signal } of the current child
    this.starts = 0
    this.clientLog = [] // kafkajs log lines of clients made with kafkaFor()
    this.cleanups = [] // run last-in first-out when the test ends, before the server stops
  }

  // Runs `fn` (e.g. a client's disconnect) when the test ends, while the server is still up.
  defer (fn) {
    this.cleanups.push(fn)
  }

  async runCleanups () {
    while (this.cleanups.length > 0) {
      const fn = this.cleanups.pop()
      const timeout = new AbortController()
      try {
        const outcome = await Promise.race([
          Promise.resolve().then(fn).then(() => null),
          sleep(CLEANUP_MS_MAX, 'timeout', { signal: timeout.signal })
        ])
        if (outcome === 'timeout') this.clientLog.push(`cleanup ${fn} did not finish within ${CLEANUP_MS_MAX} ms`)
      } catch (err) {
        this.clientLog.push(`cleanup ${fn} failed: ${err.stack}`)
      } finally {
        timeout.abort()
      }
    }
  }

  // `options.http`: also serve HTTP (WebSocket at porter.httpUrl) on a free loopback port.
  // `options.rocketmq`: also serve RocketMQ 5 (gRPC) on a free loopback port (porter.rocketmqEndpoint),
  // and wait for it at startup.
  static async create (options = {}) {
    let stat = null
    try {
      stat = fs.statSync(PORTER_BIN)
    } catch {}
    assert.ok(stat && stat.isFile() && (stat.mode & 0o111) !== 0,
      `porter binary not found at ${PORTER_BIN}: build it with \`cargo build -p porter\` ` +
      '(./scripts/test.sh does) or point PORTER_BIN at it')
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'porter-node-'))
    const dataDir = path.join(tmp, 'data')
    fs.mkdirSync(dataDir)
    const server = new Porter(dataDir, path.join(tmp, 'porter.log'), await freeLoopbackPort(),
      await freeLoopbackPort())
    server.tmp = tmp
    if (options.rocketmq) {
      server.rocketmqPort = await freeLoopbackPort()
      server.rocketmqListen = `127.0.0.1:${server.rocketmqPort}`
    }
    if (options.mqtt) {
      server.mqttPort = await freeLoopbackPort()
      server.mqttListen = `127.0.0.1:${server.mqttPort}`
    }
    if (options.http) {
      server.httpPort = await freeLoopbackPort()
      server.httpListen = `127.0.0.1:${server.httpPort}`
    }
    await server.start()
    return server
  }

  get httpUrl () {
    return `http://127.0.0.1:${this.httpPort}`
  }

  get rocketmqEndpoint () {
    return this.rocketmqListen
  }

  get mqttUrl () {
    return `mqtt://${this.mqttListen}`
  }

  get amqpUrl () {
    return `amqp://guest:guest@${this.amqpHost}:${this.amqpPort}/%2F`
  }

  get running () {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null
  }

  async start () {
    assert.ok(!this.running, 'porter already running')
    this.starts += 1
    // The server reads PORTER_* variables as settings: pass none of the test runner's.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTER_')))
    env.RUST_BACKTRACE ??= '1'
    env.NO_COLOR ??= '1'
    const args = ['serve', '--data-dir', this.dataDir, '--kafka-listen', this.bootstrap,
      '--kafka-advertised', this.bootstrap]
    if (this.amqpEnabled) args.push('--amqp-listen', `${this.amqpHost}:${this.amqpPort}`)
    // RocketMQ's default port would be shared by every server a run starts: off unless asked for.
    if (binaryHasFlag('--rocketmq-listen') && !this.extraArgs?.includes('--rocketmq-listen')) {
      args.push('--rocketmq-listen', this.rocketmqListen || 'off')
    }
    // MQTT likewise (default port 1883): `options.mqtt` gives it a free loopback port (porter.mqttUrl).
    if (binaryHasFlag('--mqtt-listen') && !this.extraArgs?.includes('--mqtt-listen')) {
      args.push('--mqtt-listen', this.mqttListen || 'off')
    }
    // STOMP's default port likewise.
    if (binaryHasFlag('--stomp-listen') && !this.extraArgs?.includes('--stomp-listen')) {
      args.push('--stomp-listen', 'off')
    }
    // The HTTP listener (WebSocket endpoints) likewise: off unless asked for ({ http: true }).
    if (binaryHasFlag('--http-listen') && !this.extraArgs?.includes('--http-listen')) {
      args.push('--http-listen', this.httpListen || 'off')
    }
    fs.appendFileSync(this.logPath, `\n=== start ${this.starts}: ${PORTER_BIN} ${args.join(' ')}\n`)
    const log = fs.openSync(this.logPath, 'a')
    let child
    try {
      child = spawn(PORTER_BIN, args, { env, stdio: ['ignore', log, log] })
    } finally {
      fs.closeSync(log)
    }
    this.child = child
    live.add(child)
    this.exit = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        live.delete(child)
        resolve({ code, signal })
      })
      child.once('error', err => {
        live.delete(child)
        resolve({ code: null, signal: null, error: err })
      })
    })
    const deadline = Date.now() + READY_MS_MAX
    while (Date.now() < deadline) {
      if (!this.running) {
        const { code, signal, error } = await this.exit
        assert.fail(`porter exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) ` +
          `during start ${this.starts}\n${this.logTail()}`)
      }
      if (await portAccepts(this.port) && (!this.amqpEnabled || await portAccepts(this.amqpPort)) &&
        (!this.rocketmqPort || await portAccepts(this.rocketmqPort)) &&
        (!this.httpPort || await portAccepts(this.httpPort))) return
      await sleep(50)
    }
    await this.kill()
    const amqp = this.amqpEnabled ? ` and AMQP ${this.amqpHost}:${this.amqpPort}` : ''
    assert.fail(`porter did not accept on ${this.bootstrap}${amqp} within ${READY_MS_MAX} ms\n${this.logTail()}`)
  }

  // SIGTERM and wait; resolves to the exit code. SIGKILLs and throws if it does not exit in time.
  async stop () {
    if (this.child === null) return null
    if (this.running) this.child.kill('SIGTERM')
    const timeout = new AbortController()
    const timedOut = sleep(SHUTDOWN_MS_MAX, 'timeout', { signal: timeout.signal }).catch(() => null)
    const result = await Promise.race([this.exit, timedOut])
    timeout.abort()
    if (result === 'timeout') {
      await this.kill()
      assert.fail(`porter ignored SIGTERM for ${SHUTDOWN_MS_MAX} ms; killed\n${this.logTail()}`)
    }
    return result.code
  }

  // Graceful restart: SIGTERM must exit 0, then start on the same data dir and port.
  async restart () {
    const code = await this.stop()
    assert.equal(code, 0, `porter exited ${code} on SIGTERM\n${this.logTail()}`)
    await this.start()
  }

  async kill () {
    if (this.running) this.child.kill('SIGKILL')
    if (this.exit) await this.exit
  }

  logTail (lines = LOG_TAIL_LINES) {
    let text
    try {
      text = fs.readFileSync(this.logPath, 'utf8')
    } catch {
      return '(no server log)'
    }
    return `--- last ${lines} lines of ${this.logPath} ---\n${tail(text, lines)}`
  }

  clientLogTail (lines = LOG_TAIL_LINES) {
    return `--- last ${lines} kafkajs log lines ---\n${this.clientLog.slice(-lines).join('\n')}`
  }
}

// A kafkajs client for `porter`. Its log (level INFO and up) is kept in porter.clientLog and shown
// only when the test fails; pass `logLevel` to raise it, other options go to `new Kafka()`.
function kafkaFor (porter, options = {}) {
  const clientId = options.clientId || 'porter-node-e2e'
  const logCreator = () => ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    porter.clientLog.push(`${new Date().toISOString()} ${label} [${clientId}/${namespace}] ${message} ${JSON.stringify(extra)}`)
  }
  return new Kafka({
    clientId,
    brokers: [porter.bootstrap],
    connectionTimeout: 3000,
    requestTimeout: 30000,
    logLevel: logLevel.INFO,
    logCreator,
    retry: { initialRetryTime: 100, retries: 8 },
    ...options
  })
}

// Wraps a node:test body `async (t, porter) => ...`: starts a server first; when the test ends (pass,
// fail or timeout) runs porter.defer()red cleanups, then stops the server (SIGTERM must then exit 0)
// and prints both logs unless the test passed. `options` go to Porter.create().
function porterTest (body, options = {}) {
  return async t => {
    const porter = await Porter.create(options)
    let passed = false
    t.after(async () => {
      let code = null
      const wasRunning = porter.running
      try {
        if (wasRunning) await porter.runCleanups()
        code = await porter.stop()
      } finally {
        if (!passed || (wasRunning && code !== 0)) {
          process.stderr.write(`\n[${t.name}] did not pass; server and client logs:\n` +
            `${porter.logTail()}\n${porter.clientLogTail()}\n`)
        } else {
          fs.rmSync(porter.tmp, { recursive: true, force: true })
        }
      }
      if (wasRunning) assert.equal(code, 0, `porter exited ${code} on SIGTERM at teardown`)
    })
    await body(t, porter)
    passed = true
  }
}

// Polls `probe` (sync or async) until it returns a truthy value; fails with `what` (a string, or a
// function giving one then) after `ms`.
async function waitFor (what, probe, ms = 15_000, everyMs = 100) {
  const describe = () => typeof what === 'function' ? what() : what
  const started = Date.now()
  const deadline = started + ms
  let last
  for (;;) {
    try {
      last = await probe()
      if (last) {
        if (process.env.PORTER_TEST_VERBOSE) console.error(`waited ${Date.now() - started} ms for ${describe()}`)
        return last
      }
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${ms} ms waiting for ${describe()}; last probe: ` +
        (last instanceof Error ? last.stack : JSON.stringify(last)))
    }
    await sleep(everyMs)
  }
}

module.exports = { Porter, PORTER_BIN, REPO_ROOT, binaryHasFlag, kafkaFor, porterTest, waitFor, freeLoopbackPort }
