'use strict'
// The kafkajs admin client: createTopics, fetchTopicMetadata, createPartitions (3 -> 5),
// describeConfigs / alterConfigs (retention.ms), deleteTopicRecords, describeCluster, deleteTopics,
// with the errors a user gets for the usual mistakes.

const test = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')
const { kafkaFor, porterTest, waitFor } = require('./porter')

const TOPIC = 'inventory'
const SEVEN_DAYS_MS = String(7 * 24 * 60 * 60 * 1000)

// kafkajs wraps broker errors (KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded): the
// broker's error name of `err` or of its cause.
function errorType (err) {
  return err.type || (err.cause && err.cause.type)
}

function expectType (type) {
  return err => {
    assert.equal(errorType(err), type, `expected ${type}, got ${err.stack}`)
    return true
  }
}

async function topicConfig (admin, topic, names) {
  const { resources } = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: names }],
    includeSynonyms: false
  })
  assert.equal(resources.length, 1)
  const [resource] = resources
  assert.equal(resource.errorCode, 0, `describeConfigs ${topic}: ${JSON.stringify(resource)}`)
  assert.equal(resource.resourceName, topic)
  assert.equal(resource.resourceType, ConfigResourceTypes.TOPIC)
  return Object.fromEntries(resource.configEntries.map(e => [e.configName, e]))
}

// The offsets a fresh consumer (assigned by hand, from the beginning) reads from one partition.
async function readOffsets (kafka, topic, partition, expectedCount) {
  const consumer = kafka.consumer({ groupId: `reader-${topic}-${partition}-${Date.now()}`, maxWaitTimeInMs: 300 })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    const seen = []
    await consumer.run({
      eachMessage: async ({ partition: p, message }) => {
        if (p === partition) seen.push({ offset: message.offset, value: message.value.toString() })
      }
    })
    await waitFor(() => `${expectedCount} messages from ${topic}/${partition} (have ${seen.length})`,
      () => seen.length >= expectedCount, 20_000)
    return seen
  } finally {
    await consumer.disconnect()
  }
}

test('admin: topics, partitions, configs, delete records, cluster', { timeout: 90_000 },
  porterTest(async (t, porter) => {
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    // for the requests that must be refused: kafkajs retries some errors (UNKNOWN_TOPIC_OR_PARTITION)
    const once = kafka.admin({ retry: { retries: 0 } })
    await once.connect()
    porter.defer(() => once.disconnect())

    // createTopics: true when created, false when it already exists
    assert.equal(await admin.createTopics({
      topics: [
        { topic: TOPIC, numPartitions: 3, configEntries: [{ name: 'segment.bytes', value: '1048576' }] },
        { topic: 'scratch', numPartitions: 1 }
      ],
      waitForLeaders: true
    }), true)
    assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }] }), false)
    assert.deepEqual((await admin.listTopics()).filter(n => !n.startsWith('__')).sort(), [TOPIC, 'scratch'])

    // fetchTopicMetadata: three partitions, all led by the one broker
    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, 1, JSON.stringify(cluster))
    const [broker] = cluster.brokers
    assert.equal(broker.host, '127.0.0.1')
    assert.equal(broker.port, porter.port)
    assert.equal(cluster.controller, broker.nodeId)
    assert.equal(typeof cluster.clusterId, 'string')
    assert.ok(cluster.clusterId.length > 0, `clusterId ${JSON.stringify(cluster.clusterId)}`)

    let { topics: [meta] } = await admin.fetchTopicMetadata({ topics: [TOPIC] })
    assert.equal(meta.name, TOPIC)
    assert.deepEqual(meta.partitions.map(p => p.partitionId).sort(), [0, 1, 2])
    for (const p of meta.partitions) {
      assert.equal(p.partitionErrorCode, 0)
      assert.equal(p.leader, broker.nodeId)
      assert.deepEqual(p.replicas, [broker.nodeId])
      assert.deepEqual(p.isr, [broker.nodeId])
    }

    // createPartitions 3 -> 5; shrinking is refused
    await admin.createPartitions({ topicPartitions: [{ topic: TOPIC, count: 5 }] })
    ;({ topics: [meta] } = await admin.fetchTopicMetadata({ topics: [TOPIC] }))
    assert.deepEqual(meta.partitions.map(p => p.partitionId).sort(), [0, 1, 2, 3, 4])
    assert.equal((await admin.fetchTopicOffsets(TOPIC)).length, 5)
    await assert.rejects(once.createPartitions({ topicPartitions: [{ topic: TOPIC, count: 4 }] }),
      expectType('INVALID_PARTITIONS'))

    // a producer that connected before the change can write to the new partitions
    const producer = kafka.producer()
    await producer.connect()
    porter.defer(() => producer.disconnect())
    const messages = []
    for (let i = 0; i < 10; i++) messages.push({ partition: 4, value: `item-${i}` })
    const [written] = await producer.send({ topic: TOPIC, messages, acks: -1 })
    assert.deepEqual({ partition: written.partition, errorCode: written.errorCode, baseOffset: written.baseOffset },
      { partition: 4, errorCode: 0, baseOffset: '0' })

    // describeConfigs: defaults and the override given at creation
    let config = await topicConfig(admin, TOPIC, ['retention.ms', 'segment.bytes'])
    assert.deepEqual(Object.keys(config).sort(), ['retention.ms', 'segment.bytes'])
    assert.equal(config['retention.ms'].configValue, SEVEN_DAYS_MS)
    assert.equal(config['retention.ms'].isDefault, true, JSON.stringify(config['retention.ms']))
    assert.equal(config['segment.bytes'].configValue, '1048576')
    assert.equal(config['segment.bytes'].isDefault, false, JSON.stringify(config['segment.bytes']))
    const all = await topicConfig(admin, TOPIC, undefined)
    for (const name of ['retention.ms', 'retention.bytes', 'segment.bytes', 'max.message.bytes', 'cleanup.policy']) {
      assert.ok(name in all, `describeConfigs without names lists ${name}; got ${Object.keys(all)}`)
    }

    // alterConfigs (the whole set, Kafka's non-incremental semantics): retention.ms becomes one
    // hour, and segment.bytes, not in the new set, goes back to its default
    const altered = await admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configEntries: [{ name: 'retention.ms', value: '3600000' }] }]
    })
    assert.deepEqual(altered.resources.map(r => ({ errorCode: r.errorCode, resourceName: r.resourceName })),
      [{ errorCode: 0, resourceName: TOPIC }])
    config = await topicConfig(admin, TOPIC, ['retention.ms', 'segment.bytes'])
    assert.equal(config['retention.ms'].configValue, '3600000')
    assert.equal(config['retention.ms'].isDefault, false)
    assert.equal(config['segment.bytes'].isDefault, true,
      `AlterConfigs replaces all overrides: segment.bytes should be default again, got ${JSON.stringify(config['segment.bytes'])}`)
    // validateOnly changes nothing; a bad value is refused with INVALID_CONFIG
    await admin.alterConfigs({
      validateOnly: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configEntries: [{ name: 'retention.ms', value: '60000' }] }]
    })
    assert.equal((await topicConfig(admin, TOPIC, ['retention.ms']))['retention.ms'].configValue, '3600000')
    await assert.rejects(once.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC, configEntries: [{ name: 'retention.ms', value: 'soon' }] }]
    }), expectType('INVALID_CONFIG'))
    assert.equal((await topicConfig(admin, TOPIC, ['retention.ms']))['retention.ms'].configValue, '3600000')
    // unknown topic
    await assert.rejects(once.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'no-such-topic' }], includeSynonyms: false
    }), expectType('UNKNOWN_TOPIC_OR_PARTITION'))

    // deleteTopicRecords: offsets below 4 go; the low watermark moves, consumers start there
    await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 4, offset: '4' }] })
    let offsets = (await admin.fetchTopicOffsets(TOPIC)).find(p => p.partition === 4)
    assert.deepEqual({ low: offsets.low, high: offsets.high }, { low: '4', high: '10' })
    const remaining = await readOffsets(kafka, TOPIC, 4, 6)
    assert.deepEqual(remaining.map(m => m.offset), ['4', '5', '6', '7', '8', '9'])
    assert.deepEqual(remaining.map(m => m.value), ['item-4', 'item-5', 'item-6', 'item-7', 'item-8', 'item-9'])
    // offset -1: everything up to the high watermark
    await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 4, offset: '-1' }] })
    offsets = (await admin.fetchTopicOffsets(TOPIC)).find(p => p.partition === 4)
    assert.deepEqual({ low: offsets.low, high: offsets.high }, { low: '10', high: '10' })
    // beyond the high watermark: OFFSET_OUT_OF_RANGE (kafkajs needs the topic's metadata first)
    await once.fetchTopicMetadata({ topics: [TOPIC] })
    await assert.rejects(once.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '100' }] }),
      err => {
        // kafkajs wraps the per-partition errors: KafkaJSNonRetriableError { cause: KafkaJSDeleteTopicRecordsError }
        const partitions = (err.cause || err).partitions || []
        assert.deepEqual(partitions.map(p => ({ partition: p.partition, type: p.error.type })),
          [{ partition: 0, type: 'OFFSET_OUT_OF_RANGE' }], `${err.stack}\n${JSON.stringify(err.cause || err)}`)
        return true
      })

    // deleteTopics: gone from the list and from metadata
    await admin.deleteTopics({ topics: [TOPIC, 'scratch'] })
    await waitFor('deleted topics gone from listTopics', async () =>
      (await admin.listTopics()).filter(n => !n.startsWith('__')).length === 0, 10_000)
    await assert.rejects(once.fetchTopicMetadata({ topics: [TOPIC] }),
      expectType('UNKNOWN_TOPIC_OR_PARTITION'))
    assert.deepEqual((await admin.listTopics()).filter(n => !n.startsWith('__')), [], 'metadata request must not re-create the topic')
    await assert.rejects(once.deleteTopics({ topics: ['never-existed'] }),
      expectType('UNKNOWN_TOPIC_OR_PARTITION'))
  }))
