'use strict'
// MQTT.js (the Node client browsers use too) over WebSocket at ws://…/mqtt, MQTT 3.1.1 and 5.0:
// QoS 0/1/2 both ways between a WebSocket client and a TCP one, retained messages, and MQTT 5
// properties through the WebSocket transport.

const test = require('node:test')
const assert = require('node:assert/strict')
const mqtt = require('mqtt')
const { porterTest } = require('./porter')

const OPTIONS = { http: true, mqtt: true }
const WAIT_MS = 10_000

async function connect (porter, url, options) {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: WAIT_MS, ...options })
  porter.defer(() => client.endAsync())
  return client
}

const wsUrl = porter => `ws://127.0.0.1:${porter.httpPort}/mqtt`

// Resolves with the first `count` messages `client` receives.
function receive (client, count) {
  return new Promise((resolve, reject) => {
    const got = []
    const timer = setTimeout(() => reject(new Error(`received ${got.length} of ${count} messages`)), WAIT_MS)
    client.on('message', (topic, payload, packet) => {
      got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, properties: packet.properties })
      if (got.length === count) {
        clearTimeout(timer)
        resolve(got)
      }
    })
  })
}

for (const protocolVersion of [4, 5]) {
  const name = protocolVersion === 4 ? '3.1.1' : '5.0'

  test(`MQTT ${name}: WebSocket and TCP clients exchange messages at QoS 0, 1 and 2`, { timeout: 60_000 },
    porterTest(async (t, porter) => {
      const ws = await connect(porter, wsUrl(porter), { protocolVersion, clientId: `ws-${name}` })
      const tcp = await connect(porter, porter.mqttUrl, { protocolVersion, clientId: `tcp-${name}` })
      await ws.subscribeAsync('lab/tcp/+', { qos: 2 })
      await tcp.subscribeAsync('lab/ws/+', { qos: 2 })
      const atWs = receive(ws, 3)
      const atTcp = receive(tcp, 3)
      for (const qos of [0, 1, 2]) {
        await ws.publishAsync(`lab/ws/q${qos}`, `ws ${qos}`, { qos })
        await tcp.publishAsync(`lab/tcp/q${qos}`, `tcp ${qos}`, { qos })
      }
      const byTopic = list => list.map(m => [m.topic, m.payload, m.qos]).sort()
      assert.deepEqual(byTopic(await atWs), [['lab/tcp/q0', 'tcp 0', 0], ['lab/tcp/q1', 'tcp 1', 1], ['lab/tcp/q2', 'tcp 2', 2]])
      assert.deepEqual(byTopic(await atTcp), [['lab/ws/q0', 'ws 0', 0], ['lab/ws/q1', 'ws 1', 1], ['lab/ws/q2', 'ws 2', 2]])
    }, OPTIONS))

  test(`MQTT ${name}: a retained message published over TCP reaches a later WebSocket subscriber`, { timeout: 60_000 },
    porterTest(async (t, porter) => {
      const tcp = await connect(porter, porter.mqttUrl, { protocolVersion })
      await tcp.publishAsync('rooms/lobby/topic', 'welcome', { qos: 1, retain: true })
      const ws = await connect(porter, wsUrl(porter), { protocolVersion })
      const got = receive(ws, 1)
      await ws.subscribeAsync('rooms/+/topic', { qos: 1 })
      const [m] = await got
      assert.deepEqual([m.topic, m.payload, m.retain], ['rooms/lobby/topic', 'welcome', true])
    }, OPTIONS))
}

test('MQTT 5.0 over WebSocket: user properties, content type and response topic arrive', { timeout: 60_000 },
  porterTest(async (t, porter) => {
    const sub = await connect(porter, wsUrl(porter), { protocolVersion: 5 })
    const pub = await connect(porter, wsUrl(porter), { protocolVersion: 5 })
    await sub.subscribeAsync('rpc/request', { qos: 1 })
    const got = receive(sub, 1)
    await pub.publishAsync('rpc/request', '{"n":1}', {
      qos: 1,
      properties: {
        contentType: 'application/json',
        responseTopic: 'rpc/reply/42',
        correlationData: Buffer.from('c-42'),
        userProperties: { tenant: 'acme' }
      }
    })
    const [m] = await got
    assert.equal(m.payload, '{"n":1}')
    assert.equal(m.properties.contentType, 'application/json')
    assert.equal(m.properties.responseTopic, 'rpc/reply/42')
    assert.equal(Buffer.from(m.properties.correlationData).toString(), 'c-42')
    assert.deepEqual({ ...m.properties.userProperties }, { tenant: 'acme' })
  }, OPTIONS))

// Raw WebSocket frames (the `ws` package), to split and join MQTT packets as no MQTT client does.
test('MQTT over WebSocket: a packet split across frames and two packets in one frame are read', { timeout: 60_000 },
  porterTest(async (t, porter) => {
    const WebSocket = require('ws')
    const socket = new WebSocket(wsUrl(porter), ['mqtt'])
    porter.defer(() => socket.terminate())
    const packets = []
    socket.on('message', data => packets.push(...Buffer.from(data)))
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
    assert.equal(socket.protocol, 'mqtt')
    // CONNECT (MQTT 3.1.1, clean session, keep-alive 60, client id "split"), in two frames.
    const id = Buffer.from('split')
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 2, 0, 60, 0, id.length]), id])
    const connect = Buffer.concat([Buffer.from([0x10, body.length]), body])
    socket.send(connect.subarray(0, 7))
    socket.send(connect.subarray(7))
    const connack = [0x20, 0x02, 0x00, 0x00]
    const until = async want => {
      const deadline = Date.now() + WAIT_MS
      while (packets.length < want.length && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
      assert.deepEqual(packets.splice(0, want.length), want)
    }
    await until(connack)
    // Two PINGREQs in one frame: two PINGRESPs.
    socket.send(Buffer.from([0xc0, 0x00, 0xc0, 0x00]))
    await until([0xd0, 0x00, 0xd0, 0x00])
  }, OPTIONS))
