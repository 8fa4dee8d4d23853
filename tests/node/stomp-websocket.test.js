'use strict'
// STOMP over WebSocket (ws://…/ws, subprotocols v12.stomp, v11.stomp, v10.stomp) with
// @stomp/stompjs, the client web apps use, on Node's `ws`: a queue with client-individual acks,
// a topic fanned out to two subscribers, and a receipt. Skips when the binary has no /ws.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('@stomp/stompjs')
const WebSocket = require('ws')
const { porterTest } = require('./porter')

const OPTIONS = { http: true }
const WAIT_MS = 10_000
const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp']

function connect (porter) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no CONNECTED')), WAIT_MS)
    const client = new Client({
      webSocketFactory: () => new WebSocket(`ws://127.0.0.1:${porter.httpPort}/ws`, SUBPROTOCOLS),
      connectHeaders: { login: 'guest', passcode: 'guest' },
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: line => porter.clientLog.push(`[stompjs] ${line}`),
      onConnect: frame => {
        clearTimeout(timer)
        resolve({ client, connected: frame })
      },
      onStompError: frame => reject(new Error(`ERROR ${frame.headers.message}: ${frame.body}`)),
      onWebSocketError: () => reject(new Error('WebSocket error'))
    })
    porter.defer(() => client.deactivate())
    client.activate()
  })
}

function collect (client, destination, count, headers = {}) {
  const got = []
  let done
  const all = new Promise((resolve, reject) => {
    done = resolve
    setTimeout(() => reject(new Error(`${destination}: ${got.length} of ${count} messages`)), WAIT_MS)
  })
  client.subscribe(destination, message => {
    got.push(message)
    if (got.length === count) done(got)
  }, headers)
  return all
}

async function skipWithoutWs (t, porter) {
  const probe = await fetch(`http://127.0.0.1:${porter.httpPort}/ws`)
  if (probe.status === 404) {
    t.skip('this porter has no /ws WebSocket endpoint (no STOMP gateway)')
    return true
  }
  return false
}

test('STOMP over WebSocket: a queue with client-individual acks', { timeout: 60_000 },
  porterTest(async (t, porter) => {
    if (await skipWithoutWs(t, porter)) return
    const { client: consumer, connected } = await connect(porter)
    assert.equal(connected.headers.version, '1.2')
    const { client: producer } = await connect(porter)
    const received = collect(consumer, '/queue/ws-jobs', 3, { ack: 'client-individual' })
    for (const n of [1, 2, 3]) {
      producer.publish({ destination: '/queue/ws-jobs', body: `job ${n}`, headers: { 'content-type': 'text/plain', 'x-n': String(n) } })
    }
    const messages = await received
    assert.deepEqual(messages.map(m => m.body), ['job 1', 'job 2', 'job 3'])
    assert.deepEqual(messages.map(m => m.headers['x-n']), ['1', '2', '3'])
    for (const m of messages) m.ack()
  }, OPTIONS))

test('STOMP over WebSocket: a topic reaches every subscriber, and a receipt comes back', { timeout: 60_000 },
  porterTest(async (t, porter) => {
    if (await skipWithoutWs(t, porter)) return
    const { client: a } = await connect(porter)
    const { client: b } = await connect(porter)
    const { client: publisher } = await connect(porter)
    // The subscriptions exist once their receipts arrive.
    const ready = [a, b].map((c, i) => new Promise(resolve => c.watchForReceipt(`sub-${i}`, resolve)))
    const atA = collect(a, '/topic/chat.lobby', 2, { receipt: 'sub-0' })
    const atB = collect(b, '/topic/chat.lobby', 2, { receipt: 'sub-1' })
    await Promise.all(ready)
    publisher.publish({ destination: '/topic/chat.lobby', body: 'hello' })
    publisher.publish({ destination: '/topic/chat.lobby', body: 'world' })
    for (const got of [await atA, await atB]) assert.deepEqual(got.map(m => m.body), ['hello', 'world'])
  }, OPTIONS))
