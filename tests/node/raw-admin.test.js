'use strict'
// The admin APIs kafkajs has no method for — IncrementalAlterConfigs, DescribeLogDirs and
// DescribeCluster — sent as hand-encoded frames next to a kafkajs client, which sets things up and
// checks their effect (describeConfigs, describeCluster).

const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { ConfigResourceTypes } = require('kafkajs')
const { kafkaFor, porterTest } = require('./porter')

const TOPIC = 'tuned'
const RESOURCE_TOPIC = 2
const OP_SET = 0
const OP_DELETE = 1

// ---- a minimal Kafka frame writer/reader ----

class Writer {
  constructor () { this.parts = [] }
  int8 (v) { const b = Buffer.alloc(1); b.writeInt8(v); this.parts.push(b); return this }
  int16 (v) { const b = Buffer.alloc(2); b.writeInt16BE(v); this.parts.push(b); return this }
  int32 (v) { const b = Buffer.alloc(4); b.writeInt32BE(v); this.parts.push(b); return this }
  bool (v) { return this.int8(v ? 1 : 0) }
  uvarint (v) {
    const bytes = []
    do {
      let byte = v & 0x7f
      v >>>= 7
      if (v !== 0) byte |= 0x80
      bytes.push(byte)
    } while (v !== 0)
    this.parts.push(Buffer.from(bytes))
    return this
  }

  string (s) {
    if (s === null) return this.int16(-1)
    const b = Buffer.from(s, 'utf8')
    return this.int16(b.length).raw(b)
  }

  array (items, each) { this.int32(items === null ? -1 : items.length); for (const i of items || []) each(this, i); return this }
  raw (b) { this.parts.push(b); return this }
  buffer () { return Buffer.concat(this.parts) }
}

class Reader {
  constructor (buffer) { this.b = buffer; this.at = 0 }
  int8 () { const v = this.b.readInt8(this.at); this.at += 1; return v }
  int16 () { const v = this.b.readInt16BE(this.at); this.at += 2; return v }
  int32 () { const v = this.b.readInt32BE(this.at); this.at += 4; return v }
  int64 () { const v = this.b.readBigInt64BE(this.at); this.at += 8; return v }
  bool () { return this.int8() !== 0 }
  uvarint () {
    let v = 0; let shift = 0; let byte
    do { byte = this.b[this.at++]; v |= (byte & 0x7f) << shift; shift += 7 } while (byte & 0x80)
    return v >>> 0
  }

  string () { const n = this.int16(); if (n < 0) return null; const s = this.b.toString('utf8', this.at, this.at + n); this.at += n; return s }
  compactString () { const n = this.uvarint() - 1; if (n < 0) return null; const s = this.b.toString('utf8', this.at, this.at + n); this.at += n; return s }
  array (each) { const n = this.int32(); const out = []; for (let i = 0; i < n; i++) out.push(each(this)); return out }
  compactArray (each) { const n = this.uvarint() - 1; const out = []; for (let i = 0; i < n; i++) out.push(each(this)); return out }
  taggedFields () { const n = this.uvarint(); for (let i = 0; i < n; i++) { this.uvarint(); this.at += this.uvarint() } }
  done () { assert.equal(this.at, this.b.length, `response has ${this.b.length - this.at} unread bytes`) }
}

// One request on a fresh connection; resolves to a Reader positioned after the response header.
function request (porter, { apiKey, apiVersion, flexible, body }) {
  const correlationId = 4242
  const header = new Writer().int16(apiKey).int16(apiVersion).int32(correlationId).string('porter-node-raw')
  if (flexible) header.uvarint(0) // request header v2: no tagged fields
  const payload = Buffer.concat([header.buffer(), body])
  const frame = Buffer.concat([new Writer().int32(payload.length).buffer(), payload])
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: porter.port })
    let data = Buffer.alloc(0)
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no response to api ${apiKey} v${apiVersion} in 10 s`)))
    socket.on('error', reject)
    socket.on('close', () => reject(new Error(`connection closed before a response to api ${apiKey} v${apiVersion}`)))
    socket.on('connect', () => socket.write(frame))
    socket.on('data', chunk => {
      data = Buffer.concat([data, chunk])
      if (data.length < 4 || data.length < 4 + data.readInt32BE(0)) return
      socket.destroy()
      const reader = new Reader(data.subarray(4, 4 + data.readInt32BE(0)))
      assert.equal(reader.int32(), correlationId)
      if (flexible) reader.taggedFields() // response header v1
      resolve(reader)
    })
  })
}

async function incrementalAlterConfigs (porter, resources, validateOnly = false) {
  const body = new Writer()
    .array(resources, (w, r) => w.int8(r.type).string(r.name)
      .array(r.configs, (w, c) => w.string(c.name).int8(c.op).string(c.value === undefined ? null : c.value)))
    .bool(validateOnly).buffer()
  const r = await request(porter, { apiKey: 44, apiVersion: 0, flexible: false, body })
  const throttleTimeMs = r.int32()
  const responses = r.array(r => ({ errorCode: r.int16(), errorMessage: r.string(), resourceType: r.int8(), resourceName: r.string() }))
  r.done()
  assert.equal(throttleTimeMs, 0)
  return responses
}

async function describeLogDirs (porter, topics) {
  const body = new Writer().array(topics, (w, t) => w.string(t.topic).array(t.partitions, (w, p) => w.int32(p))).buffer()
  const r = await request(porter, { apiKey: 35, apiVersion: 1, flexible: false, body })
  r.int32() // throttle
  const results = r.array(r => ({
    errorCode: r.int16(),
    logDir: r.string(),
    topics: r.array(r => ({
      name: r.string(),
      partitions: r.array(r => ({ partition: r.int32(), size: r.int64(), offsetLag: r.int64(), isFuture: r.bool() }))
    }))
  }))
  r.done()
  return results
}

async function describeCluster (porter) {
  const body = new Writer().bool(false).uvarint(0).buffer()
  const r = await request(porter, { apiKey: 60, apiVersion: 0, flexible: true, body })
  const out = {
    throttleTimeMs: r.int32(),
    errorCode: r.int16(),
    errorMessage: r.compactString(),
    clusterId: r.compactString(),
    controllerId: r.int32(),
    brokers: r.compactArray(r => {
      const b = { brokerId: r.int32(), host: r.compactString(), port: r.int32(), rack: r.compactString() }
      r.taggedFields()
      return b
    }),
    clusterAuthorizedOperations: r.int32()
  }
  r.taggedFields()
  r.done()
  return out
}

test('IncrementalAlterConfigs, DescribeLogDirs, DescribeCluster (raw frames)', { timeout: 60_000 },
  porterTest(async (t, porter) => {
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    await admin.createTopics({
      topics: [{ topic: TOPIC, numPartitions: 2, configEntries: [{ name: 'segment.bytes', value: '1048576' }] }],
      waitForLeaders: true
    })
    const config = async () => {
      const { resources: [r] } = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configNames: ['retention.ms', 'segment.bytes'] }],
        includeSynonyms: false
      })
      return Object.fromEntries(r.configEntries.map(e => [e.configName, { value: e.configValue, isDefault: e.isDefault }]))
    }

    // SET one key: the other override stays (that is the difference from AlterConfigs)
    assert.deepEqual(await incrementalAlterConfigs(porter, [{ type: RESOURCE_TOPIC, name: TOPIC, configs: [{ name: 'retention.ms', op: OP_SET, value: '7200000' }] }]),
      [{ errorCode: 0, errorMessage: null, resourceType: RESOURCE_TOPIC, resourceName: TOPIC }])
    assert.deepEqual(await config(), {
      'retention.ms': { value: '7200000', isDefault: false },
      'segment.bytes': { value: '1048576', isDefault: false }
    })
    // validateOnly changes nothing
    const [validated] = await incrementalAlterConfigs(porter, [{ type: RESOURCE_TOPIC, name: TOPIC, configs: [{ name: 'retention.ms', op: OP_SET, value: '1000' }] }], true)
    assert.equal(validated.errorCode, 0, JSON.stringify(validated))
    assert.equal((await config())['retention.ms'].value, '7200000')
    // DELETE: back to the default
    const [deleted] = await incrementalAlterConfigs(porter, [{ type: RESOURCE_TOPIC, name: TOPIC, configs: [{ name: 'segment.bytes', op: OP_DELETE }] }])
    assert.equal(deleted.errorCode, 0, JSON.stringify(deleted))
    assert.deepEqual((await config())['segment.bytes'].isDefault, true)
    assert.deepEqual((await config())['retention.ms'], { value: '7200000', isDefault: false })
    // refusals: a bad value (INVALID_CONFIG, 40), an unknown topic (UNKNOWN_TOPIC_OR_PARTITION, 3)
    const [bad] = await incrementalAlterConfigs(porter, [{ type: RESOURCE_TOPIC, name: TOPIC, configs: [{ name: 'retention.ms', op: OP_SET, value: 'forever' }] }])
    assert.equal(bad.errorCode, 40, JSON.stringify(bad))
    const [unknown] = await incrementalAlterConfigs(porter, [{ type: RESOURCE_TOPIC, name: 'no-such-topic', configs: [{ name: 'retention.ms', op: OP_SET, value: '1000' }] }])
    assert.equal(unknown.errorCode, 3, JSON.stringify(unknown))

    // DescribeLogDirs: one log dir holding the topic's partitions, sizes growing with the data
    const producer = kafka.producer()
    await producer.connect()
    porter.defer(() => producer.disconnect())
    await producer.send({ topic: TOPIC, messages: Array.from({ length: 100 }, (_, i) => ({ partition: 0, value: `v${i}`.repeat(20) })), acks: -1 })
    const dirs = await describeLogDirs(porter, null)
    assert.equal(dirs.length, 1, JSON.stringify(dirs, (k, v) => typeof v === 'bigint' ? String(v) : v))
    const [dir] = dirs
    assert.equal(dir.errorCode, 0)
    assert.ok(dir.logDir.length > 0)
    const topic = dir.topics.find(t => t.name === TOPIC)
    assert.ok(topic, `${TOPIC} in ${dir.topics.map(t => t.name)}`)
    const sizes = Object.fromEntries(topic.partitions.map(p => [p.partition, p.size]))
    assert.deepEqual(Object.keys(sizes).sort(), ['0', '1'])
    assert.ok(sizes[0] > 2000n, `partition 0 holds 100 records of 40+ bytes; size ${sizes[0]}`)
    assert.equal(sizes[1], 0n)
    const only = await describeLogDirs(porter, [{ topic: TOPIC, partitions: [1] }])
    assert.deepEqual(only[0].topics.map(t => ({ name: t.name, partitions: t.partitions.map(p => p.partition) })), [{ name: TOPIC, partitions: [1] }])

    // DescribeCluster agrees with what kafkajs learns from Metadata
    const cluster = await describeCluster(porter)
    const fromMetadata = await admin.describeCluster()
    assert.equal(cluster.errorCode, 0, JSON.stringify(cluster))
    assert.equal(cluster.clusterId, fromMetadata.clusterId)
    assert.equal(cluster.controllerId, fromMetadata.controller)
    assert.deepEqual(cluster.brokers.map(b => ({ nodeId: b.brokerId, host: b.host, port: b.port })), fromMetadata.brokers.map(b => ({ nodeId: b.nodeId, host: b.host, port: b.port })))
    assert.deepEqual(cluster.brokers.map(b => `${b.host}:${b.port}`), [porter.bootstrap])
  }))
