'use strict'
// Porter's management UI: one page, no framework, no network beyond this broker's own API.
// Every name shown comes from clients (queue names, connection users), so the DOM is built with
// textContent only (el() below), never innerHTML.

const REFRESH_MS = 5000
const HISTORY_POINTS = 60 // 5 minutes of 5 s samples

const state = {
  auth: sessionStorage.getItem('porter.auth'),
  timer: null,
  history: [], // overview samples {t, ready, unacked, connections, publish, deliver, ack, appended}
  lag: {}, // group id -> [{t, lag}]
  browsed: null // the last messages browsed: {topic, from, partition, messages}, kept across refreshes
}

function el (tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value)
    else if (key === 'className') node.className = value
    else node.setAttribute(key, value === true ? '' : value)
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    node.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return node
}

const $ = id => document.getElementById(id)
const enc = encodeURIComponent
const fmt = n => (n === null || n === undefined) ? '–' : Number(n).toLocaleString('en')
// A per-second rate: whole numbers from 10 up, one decimal below.
const perSecond = n => (n === null || n === undefined) ? '–' : `${Number(n).toLocaleString('en', { maximumFractionDigits: n >= 10 ? 0 : 1 })}/s`
const rateOf = (stats, key) => stats && stats[key] ? stats[key].rate : 0
function bytes (n) {
  if (n === null || n === undefined) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}

class ApiError extends Error {
  constructor (status, reason) { super(reason); this.status = status }
}

async function api (method, path, body) {
  const headers = { 'X-Requested-With': 'XMLHttpRequest' }
  if (state.auth) headers.Authorization = `Basic ${state.auth}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  const json = text ? JSON.parse(text) : null
  // 401 for a user the tags do not allow (RabbitMQ's "Not administrator user") is not a logout.
  const byTags = json && /^Not (management|administrator) user$/.test(json.reason || '')
  if (response.status === 401 && !byTags) { showLogin('Log in again.'); throw new ApiError(401, 'not logged in') }
  if (!response.ok) throw new ApiError(byTags ? 403 : response.status, (json && json.reason) || response.statusText)
  return json
}

function flash (message, ok = false) {
  const box = $('flash')
  box.textContent = message
  box.className = ok ? 'flash ok' : 'flash'
  box.hidden = false
  clearTimeout(flash.timer)
  flash.timer = setTimeout(() => { box.hidden = true }, ok ? 2500 : 6000)
}

// Runs an action; reports its failure (or success text) and refreshes the page.
async function act (what, fn) {
  try {
    await fn()
    flash(what, true)
  } catch (e) {
    if (e.status !== 401) flash(`${what} failed: ${e.message}`)
  }
  render()
}

function showLogin (message) {
  state.auth = null
  sessionStorage.removeItem('porter.auth')
  $('app').hidden = true
  $('login').hidden = false
  $('login-error').hidden = !message
  $('login-error').textContent = message || ''
  $('password').focus()
}

$('login-form').addEventListener('submit', async event => {
  event.preventDefault()
  state.auth = btoa(`${$('user').value}:${$('password').value}`)
  try {
    const me = await api('GET', '/api/whoami')
    if (!me.tags.some(t => ['administrator', 'monitoring', 'management', 'policymaker'].includes(t))) {
      showLogin(`User ${me.name} has no management tag: it may not use this UI.`)
      return
    }
    sessionStorage.setItem('porter.auth', state.auth)
    start()
  } catch (e) {
    showLogin(e.status === 401 ? 'Wrong user or password.' : `Cannot reach the broker: ${e.message}`)
  }
})
$('logout').addEventListener('click', () => showLogin())

function start () {
  $('login').hidden = true
  $('app').hidden = false
  if (!location.hash) location.hash = '#/overview'
  render()
  clearInterval(state.timer)
  state.timer = setInterval(() => { sample(); if (!editing()) render() }, REFRESH_MS)
  sample()
}

// A refresh re-renders tables; not while the user is typing in a form.
function editing () {
  const active = document.activeElement
  return active && (active.tagName === 'INPUT' || active.tagName === 'SELECT' || active.tagName === 'TEXTAREA') && active.value !== ''
}

async function sample () {
  try {
    const o = await api('GET', '/api/overview')
    const m = o.message_stats || {}
    const rate = key => (m[key] && m[key].rate) || 0
    state.history.push({
      t: Date.now(),
      ready: o.queue_totals.messages_ready,
      unacked: o.queue_totals.messages_unacknowledged,
      connections: o.object_totals.connections,
      publish: rate('publish_details'),
      deliver: rate('deliver_get_details'),
      ack: rate('ack_details'),
      appended: rate('topic_append_details')
    })
    if (state.history.length > HISTORY_POINTS) state.history.shift()
  } catch (e) { /* the page shows errors */ }
}

// A line chart of `series` ([{label, color, values}]) on a canvas.
function chart (series, height = 180) {
  const canvas = el('canvas', { height })
  requestAnimationFrame(() => {
    const width = canvas.clientWidth || 600
    const ratio = window.devicePixelRatio || 1
    canvas.width = width * ratio
    canvas.height = height * ratio
    const g = canvas.getContext('2d')
    g.scale(ratio, ratio)
    // A top that divides into 4 whole steps, so the axis never repeats a label.
    const max = Math.ceil(Math.max(4, ...series.flatMap(s => s.values)) / 4) * 4
    const pad = 28
    g.strokeStyle = '#e2e5ea'
    g.fillStyle = '#6b7385'
    g.font = '11px system-ui'
    for (let i = 0; i <= 4; i++) {
      const y = pad / 2 + (height - pad) * i / 4
      g.beginPath(); g.moveTo(pad + 10, y); g.lineTo(width, y); g.stroke()
      g.fillText(fmt(Math.round(max * (4 - i) / 4)), 0, y + 4)
    }
    for (const s of series) {
      g.strokeStyle = s.color
      g.lineWidth = 2
      g.beginPath()
      s.values.forEach((v, i) => {
        const x = pad + 10 + (width - pad - 10) * (s.values.length < 2 ? 1 : i / (HISTORY_POINTS - 1))
        const y = pad / 2 + (height - pad) * (1 - v / max)
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y)
      })
      g.stroke()
    }
  })
  const legend = el('div', { className: 'legend' }, series.map(s => el('span', { style: `--c: ${s.color}` }, s.label)))
  return el('div', {}, canvas, legend)
}

function table (columns, rows, onClick) {
  if (!rows.length) return el('p', { className: 'empty' }, 'Nothing here yet.')
  return el('table', {},
    el('thead', {}, el('tr', {}, columns.map(c => el('th', { className: c.num ? 'num' : '' }, c.title)))),
    el('tbody', {}, rows.map(row => el('tr', {
      className: onClick ? 'clickable' : '',
      'data-name': row.name ?? row.group_id ?? '',
      onclick: onClick ? (e) => { if (e.target.tagName !== 'BUTTON') onClick(row) } : undefined
    }, columns.map(c => el('td', { className: c.num ? 'num' : '' }, c.cell ? c.cell(row) : (c.num ? fmt(row[c.key]) : String(row[c.key] ?? '–')))))))
  )
}

// Offers `value` as a JSON file download (the API needs the Authorization header, so no plain link).
function saveJson (value, name) {
  const link = el('a', { href: URL.createObjectURL(new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' })), download: name })
  link.click()
  URL.revokeObjectURL(link.href)
}

const stat = (label, value, alarm = false) =>
  el('div', { className: 'card stat' }, el('h3', {}, label), el('div', { className: alarm ? 'value alarm' : 'value' }, value))

// ---------------------------------------------------------------------------------------- pages

const pages = {
  async overview () {
    const o = await api('GET', '/api/overview')
    $('node').textContent = `${o.node} · ${o.product_name} ${o.product_version}`
    const r = o.resources || {}
    const h = state.history
    return [
      el('div', { className: 'stats' },
        stat('Connections', fmt(o.object_totals.connections)),
        stat('Queues', fmt(o.object_totals.queues)),
        stat('Ready', fmt(o.queue_totals.messages_ready)),
        stat('Unacked', fmt(o.queue_totals.messages_unacknowledged)),
        stat('Consumers', fmt(o.object_totals.consumers)),
        stat('Topics', fmt(o.object_totals.topics)),
        stat(r.memory_alarm ? 'Memory · ALARM' : 'Memory', bytes(r.memory_bytes), r.memory_alarm),
        stat(r.disk_alarm ? 'Disk free · ALARM' : 'Disk free', bytes(r.disk_free_bytes), r.disk_alarm)),
      el('div', { className: 'grid3' },
        el('div', { className: 'card' }, el('h3', {}, 'Queued messages, last 5 minutes'),
          chart([{ label: 'ready', color: '#2f6fed', values: h.map(p => p.ready) },
            { label: 'unacknowledged', color: '#d97706', values: h.map(p => p.unacked) }])),
        el('div', { className: 'card' }, el('h3', {}, 'Message rates (per second), last 5 minutes'),
          chart([{ label: 'published to queues', color: '#2f6fed', values: h.map(p => p.publish) },
            { label: 'delivered', color: '#23a55a', values: h.map(p => p.deliver) },
            { label: 'acknowledged', color: '#8b5cf6', values: h.map(p => p.ack) },
            { label: 'appended to topics', color: '#d97706', values: h.map(p => p.appended) }])),
        el('div', { className: 'card' }, el('h3', {}, 'Connections, last 5 minutes'),
          chart([{ label: 'connections', color: '#23a55a', values: h.map(p => p.connections) }]))),
      el('h2', {}, 'Listeners'),
      el('div', { className: 'card' }, table([
        { title: 'Protocol', key: 'protocol' }, { title: 'Address', key: 'ip_address' }, { title: 'Port', key: 'port' }
      ], o.listeners))
    ]
  },

  async queues () {
    const queues = await api('GET', '/api/queues')
    const name = el('input', { id: 'new-queue', placeholder: 'queue name', required: true })
    const durable = el('select', { id: 'new-queue-durable' }, el('option', { value: 'true' }, 'durable'), el('option', { value: 'false' }, 'transient'))
    const form = el('form', {
      className: 'inline',
      onsubmit: e => {
        e.preventDefault()
        const queue = name.value.trim()
        act(`Queue ${queue} declared`, () => api('PUT', `/api/queues/%2F/${enc(queue)}`, { durable: durable.value === 'true' }))
        name.value = ''
      }
    }, name, durable, el('button', { id: 'declare-queue' }, 'Add queue'))
    return [
      el('div', { className: 'toolbar' }, el('h2', { className: 'grow' }, `Queues (${queues.length})`), form),
      el('div', { className: 'card' }, table([
        { title: 'Virtual host', key: 'vhost' },
        { title: 'Name', key: 'name' },
        { title: 'Ready', key: 'messages_ready', num: true },
        { title: 'Unacked', key: 'messages_unacknowledged', num: true },
        { title: 'Total', key: 'messages', num: true },
        { title: 'Consumers', key: 'consumers', num: true },
        { title: 'In', cell: q => perSecond(rateOf(q.message_stats, 'publish_details')), num: true },
        { title: 'Out', cell: q => perSecond(rateOf(q.message_stats, 'deliver_get_details')), num: true },
        { title: 'Features', cell: q => el('span', {}, q.durable ? el('span', { className: 'pill on' }, 'D') : null, q.exclusive ? el('span', { className: 'pill' }, 'excl') : null, q.auto_delete ? el('span', { className: 'pill' }, 'AD') : null) },
        {
          title: '',
          cell: q => el('div', { className: 'actions' },
            el('button', { className: 'small', 'data-action': 'purge', onclick: () => act(`Queue ${q.name} purged`, () => api('DELETE', `/api/queues/${enc(q.vhost)}/${enc(q.name)}/contents`)) }, 'Purge'),
            el('button', { className: 'small danger', 'data-action': 'delete', onclick: () => confirm(`Delete queue ${q.name} and its messages?`) && act(`Queue ${q.name} deleted`, () => api('DELETE', `/api/queues/${enc(q.vhost)}/${enc(q.name)}`)) }, 'Delete'))
        }
      ], queues, q => { location.hash = `#/queues/${enc(q.vhost)}/${enc(q.name)}` }))
    ]
  },

  async queue (vhost, name) {
    const q = await api('GET', `/api/queues/${enc(vhost)}/${enc(name)}`)
    const payload = el('input', { id: 'publish-payload', placeholder: 'payload' })
    const results = el('div', { id: 'got' })
    return [
      el('a', { className: 'back', href: '#/queues' }, '← Queues'),
      el('h2', {}, `Queue ${q.name}`),
      el('div', { className: 'stats' }, stat('Ready', fmt(q.messages_ready)), stat('Unacknowledged', fmt(q.messages_unacknowledged)), stat('Consumers', fmt(q.consumers)),
        stat('In', perSecond(rateOf(q.message_stats, 'publish_details'))), stat('Out', perSecond(rateOf(q.message_stats, 'deliver_get_details'))),
        stat('Acked', perSecond(rateOf(q.message_stats, 'ack_details'))), stat('Durable', q.durable ? 'yes' : 'no')),
      el('div', { className: 'grid2' },
        el('div', { className: 'card' }, el('h3', {}, 'Publish to this queue'),
          el('form', { className: 'inline', onsubmit: e => { e.preventDefault(); act('Message published', () => api('POST', '/api/exchanges/%2F/amq.default/publish', { routing_key: name, payload: payload.value, payload_encoding: 'string', properties: { delivery_mode: 2 } })) } },
            payload, el('button', {}, 'Publish'))),
        el('div', { className: 'card' }, el('h3', {}, 'Look at messages (they stay in the queue)'),
          el('button', {
            onclick: async () => {
              const got = await api('POST', `/api/queues/${enc(vhost)}/${enc(name)}/get`, { count: 10, ackmode: 'ack_requeue_true', encoding: 'auto' })
              results.replaceChildren(table([{ title: 'Routing key', key: 'routing_key' }, { title: 'Bytes', key: 'payload_bytes', num: true }, { title: 'Payload', cell: m => el('pre', { className: 'payload' }, m.payload) }], got))
            }
          }, 'Get 10'), results)),
      el('h2', {}, 'Arguments'),
      el('div', { className: 'card' }, el('pre', { className: 'payload' }, JSON.stringify(q.arguments, null, 2)))
    ]
  },

  async exchanges () {
    const exchanges = await api('GET', '/api/exchanges')
    const name = el('input', { placeholder: 'exchange name', required: true })
    const type = el('select', {}, ['direct', 'fanout', 'topic', 'headers'].map(t => el('option', { value: t }, t)))
    return [
      el('div', { className: 'toolbar' }, el('h2', { className: 'grow' }, `Exchanges (${exchanges.length})`),
        el('form', { className: 'inline', onsubmit: e => { e.preventDefault(); const x = name.value.trim(); act(`Exchange ${x} declared`, () => api('PUT', `/api/exchanges/%2F/${enc(x)}`, { type: type.value, durable: true })) } }, name, type, el('button', {}, 'Add exchange'))),
      el('div', { className: 'card' }, table([
        { title: 'Virtual host', key: 'vhost' },
        { title: 'Name', cell: x => x.name || '(default)' },
        { title: 'Type', key: 'type' },
        { title: 'Features', cell: x => el('span', {}, x.durable ? el('span', { className: 'pill on' }, 'D') : null, x.internal ? el('span', { className: 'pill' }, 'internal') : null) },
        { title: '', cell: x => (x.name && !x.name.startsWith('amq.')) ? el('div', { className: 'actions' }, el('button', { className: 'small danger', onclick: () => confirm(`Delete exchange ${x.name}?`) && act(`Exchange ${x.name} deleted`, () => api('DELETE', `/api/exchanges/${enc(x.vhost)}/${enc(x.name)}`)) }, 'Delete')) : '' }
      ], exchanges)),
      el('h2', {}, 'Bindings'),
      el('div', { className: 'card' }, table([
        { title: 'Source', cell: b => b.source || '(default)' }, { title: 'Destination', key: 'destination' }, { title: 'Type', key: 'destination_type' }, { title: 'Routing key', key: 'routing_key' }
      ], (await api('GET', '/api/bindings')).filter(b => b.source !== '')))
    ]
  },

  async topics () {
    const topics = await api('GET', '/api/topics')
    const name = el('input', { id: 'new-topic', placeholder: 'topic name', required: true })
    const partitions = el('input', { id: 'new-topic-partitions', type: 'number', min: '1', max: '10000', value: '1', style: 'width: 6rem' })
    const form = el('form', {
      className: 'inline',
      onsubmit: e => {
        e.preventDefault()
        const topic = name.value.trim()
        act(`Topic ${topic} created`, () => api('PUT', `/api/topics/${enc(topic)}`, { partitions: Number(partitions.value) }))
        name.value = ''
      }
    }, name, partitions, el('button', { id: 'create-topic' }, 'Add topic'))
    return [
      el('div', { className: 'toolbar' }, el('h2', { className: 'grow' }, `Topics (${topics.length})`), form),
      el('div', { className: 'card' }, table([
        { title: 'Name', key: 'name' }, { title: 'Partitions', key: 'partitions', num: true }, { title: 'Messages', key: 'messages', num: true },
        { title: 'In', cell: t => perSecond(t.messages_in_rate), num: true },
        { title: 'Read', cell: t => `${bytes(t.bytes_out_rate)}/s`, num: true },
        { title: 'Size', cell: t => bytes(t.size_bytes) }, { title: 'Type', key: 'message_type' },
        { title: '', cell: t => t.name.startsWith('__') ? '' : el('div', { className: 'actions' }, el('button', { className: 'small danger', 'data-action': 'delete', onclick: () => confirm(`Delete topic ${t.name} and its records?`) && act(`Topic ${t.name} deleted`, () => api('DELETE', `/api/topics/${enc(t.name)}`)) }, 'Delete')) }
      ], topics, t => { location.hash = `#/topics/${enc(t.name)}` })),
      el('h2', {}, 'Definitions'),
      el('div', { className: 'card' },
        el('p', { className: 'hint' }, 'Virtual hosts, exchanges, queues, bindings and topics as one JSON file (RabbitMQ\'s format plus topics). Importing is idempotent.'),
        el('div', { className: 'toolbar' },
          el('button', {
            id: 'export-definitions',
            onclick: async () => saveJson(await api('GET', '/api/definitions'), 'porter-definitions.json')
          }, 'Export definitions'),
          el('input', {
            id: 'import-definitions',
            type: 'file',
            accept: 'application/json',
            onchange: async e => {
              const file = e.target.files[0]
              if (!file) return
              let definitions
              try { definitions = JSON.parse(await file.text()) } catch (err) { flash(`${file.name} is not JSON: ${err.message}`); return }
              act(`Definitions imported from ${file.name}`, () => api('POST', '/api/definitions', definitions))
            }
          })))
    ]
  },

  async topic (name) {
    const t = await api('GET', `/api/topics/${enc(name)}`)
    return [
      el('a', { className: 'back', href: '#/topics' }, '← Topics'),
      el('h2', {}, `Topic ${t.name}`),
      el('div', { className: 'stats' }, stat('Partitions', fmt(t.partitions)), stat('Messages', fmt(t.messages)), stat('Size', bytes(t.size_bytes))),
      el('h2', {}, 'Partitions'),
      el('div', { className: 'card' }, table([
        { title: 'Partition', key: 'partition', num: true }, { title: 'Log start', key: 'log_start_offset', num: true },
        { title: 'High watermark', key: 'high_watermark', num: true }, { title: 'Log end', key: 'log_end_offset', num: true },
        { title: 'Size', cell: p => bytes(p.size_bytes) }
      ], t.partition_details)),
      el('h2', {}, 'Config overrides'),
      el('div', { className: 'card' },
        topicAlter(t),
        table([{ title: 'Key', key: 'key' }, { title: 'Value', key: 'value' },
          { title: '', cell: o => el('div', { className: 'actions' }, el('button', { className: 'small', onclick: () => act(`${o.key} back to the broker default`, () => api('PATCH', `/api/topics/${enc(t.name)}`, { config: { [o.key]: null } })) }, 'Remove')) }
        ], Object.entries(t.config).map(([key, value]) => ({ key, value, name: key })))),
      ...topicMessages(t)
    ]
  },

  async groups () {
    const groups = await api('GET', '/api/groups')
    return [
      el('h2', {}, `Consumer groups (${groups.length})`),
      el('div', { className: 'card' }, table([{ title: 'Group', key: 'group_id' }, { title: 'State', key: 'state' }, { title: 'Protocol', key: 'protocol_type' }],
        groups, g => { location.hash = `#/groups/${enc(g.group_id)}` }))
    ]
  },

  async group (id) {
    const g = await api('GET', `/api/groups/${enc(id)}`)
    const points = state.lag[id] = (state.lag[id] || []).concat({ t: Date.now(), lag: g.lag }).slice(-HISTORY_POINTS)
    return [
      el('a', { className: 'back', href: '#/groups' }, '← Consumer groups'),
      el('h2', {}, `Group ${g.group_id}`),
      el('div', { className: 'stats' }, stat('State', g.state), stat('Members', fmt(g.members.length)), el('div', { className: 'card stat' }, el('h3', {}, 'Total lag'), el('div', { className: 'value', id: 'total-lag' }, fmt(g.lag)))),
      el('div', { className: 'card', style: 'margin-top: .9rem' }, el('h3', {}, 'Lag while this page is open'), chart([{ label: 'lag', color: '#d97706', values: points.map(p => p.lag) }])),
      el('h2', {}, 'Lag per partition'),
      el('div', { className: 'card' }, table([
        { title: 'Topic', key: 'topic' }, { title: 'Partition', key: 'partition', num: true }, { title: 'Committed', key: 'committed_offset', num: true },
        { title: 'Log end', key: 'log_end_offset', num: true }, { title: 'Lag', key: 'lag', num: true }
      ], g.offsets)),
      el('h2', {}, 'Members'),
      el('div', { className: 'card' }, table([
        { title: 'Member', key: 'member_id' }, { title: 'Client', key: 'client_id' }, { title: 'Host', key: 'client_host' },
        { title: 'Assigned partitions', cell: m => (m.assignment || []).map(a => `${a.topic}: ${a.partitions.join(', ')}`).join('; ') || '–' }
      ], g.members))
    ]
  },

  async connections () {
    const connections = await api('GET', '/api/connections')
    // Byte rates from this page's previous reading of each connection.
    const now = Date.now()
    const before = state.connectionBytes || {}
    state.connectionBytes = Object.fromEntries(connections.map(c => [c.name, { t: now, recv: c.recv_oct, send: c.send_oct }]))
    for (const c of connections) {
      const b = before[c.name]
      const seconds = b ? (now - b.t) / 1000 : 0
      c.recv_rate = seconds > 0 ? Math.max(0, c.recv_oct - b.recv) / seconds : null
      c.send_rate = seconds > 0 ? Math.max(0, c.send_oct - b.send) / seconds : null
    }
    return [
      el('h2', {}, `Connections (${connections.length})`),
      el('div', { className: 'card' }, table([
        { title: 'Protocol', key: 'protocol' }, { title: 'Client', cell: c => `${c.peer_host}:${c.peer_port}` }, { title: 'User', key: 'user' },
        { title: 'Since', cell: c => new Date(c.connected_at).toLocaleTimeString() },
        { title: 'Received', cell: c => bytes(c.recv_oct) }, { title: 'Sent', cell: c => bytes(c.send_oct) },
        { title: 'In/s', cell: c => c.recv_rate === null ? '–' : `${bytes(c.recv_rate)}/s`, num: true },
        { title: 'Out/s', cell: c => c.send_rate === null ? '–' : `${bytes(c.send_rate)}/s`, num: true },
        { title: '', cell: c => el('div', { className: 'actions' }, el('button', { className: 'small danger', onclick: () => confirm(`Close ${c.name}?`) && act('Connection closed', () => api('DELETE', `/api/connections/${enc(c.name)}`)) }, 'Close')) }
      ], connections))
    ]
  }
}

// A topic page's form to set a config override (Kafka's names) or grow the partitions.
function topicAlter (t) {
  const key = el('input', { id: 'config-key', placeholder: 'retention.ms', style: 'width: 12rem' })
  const value = el('input', { id: 'config-value', placeholder: 'value', style: 'width: 10rem' })
  const partitions = el('input', { id: 'alter-partitions', type: 'number', min: String(t.partitions), value: String(t.partitions), style: 'width: 6rem' })
  return el('div', { className: 'toolbar' },
    el('form', { className: 'inline', onsubmit: e => { e.preventDefault(); act(`${key.value} set`, () => api('PATCH', `/api/topics/${enc(t.name)}`, { config: { [key.value.trim()]: value.value } })) } },
      key, value, el('button', { id: 'set-config' }, 'Set')),
    el('form', { className: 'inline', onsubmit: e => { e.preventDefault(); act(`${t.name} has ${partitions.value} partitions`, () => api('PATCH', `/api/topics/${enc(t.name)}`, { partitions: Number(partitions.value) })) } },
      el('span', {}, 'Partitions'), partitions, el('button', { id: 'grow-partitions' }, 'Grow')))
}

// A topic page's message browser (read-only: it moves no group's offsets) and test producer.
function topicMessages (t) {
  const shown = state.browsed && state.browsed.topic === t.name ? state.browsed : { from: '-20', partition: '', messages: null }
  const from = el('input', { id: 'browse-from', value: shown.from, title: 'first, next, an offset, -N (N before the end) or timestamp=<ms>', style: 'width: 10rem' })
  const partition = el('select', { id: 'browse-partition' }, el('option', { value: '' }, 'all partitions'),
    t.partition_details.map(p => el('option', { value: String(p.partition), selected: String(p.partition) === shown.partition }, `partition ${p.partition}`)))
  const browse = async () => {
    const query = new URLSearchParams({ from: from.value.trim() || 'first', limit: '50' })
    if (partition.value !== '') query.set('partition', partition.value)
    try {
      const page = await api('GET', `/api/topics/${enc(t.name)}/messages?${query}`)
      state.browsed = { topic: t.name, from: from.value, partition: partition.value, messages: page.messages }
    } catch (e) {
      if (e.status !== 401) flash(`Browsing failed: ${e.message}`)
    }
    render()
  }
  const key = el('input', { id: 'produce-key', placeholder: 'key (optional)', style: 'width: 10rem' })
  const value = el('input', { id: 'produce-value', placeholder: 'value' })
  const produce = e => {
    e.preventDefault()
    const record = { value: value.value }
    if (key.value !== '') record.key = key.value
    act('Message produced', () => api('POST', `/api/topics/${enc(t.name)}/messages`, { records: [record] }))
  }
  const text = (m, field) => m[field] === null ? '–' : (m[`${field}_encoding`] === 'base64' ? `base64:${m[field]}` : m[field])
  const results = shown.messages === null
    ? el('p', { className: 'hint' }, 'Browse reads records without consuming them.')
    : table([
      { title: 'Partition', key: 'partition', num: true }, { title: 'Offset', key: 'offset', num: true },
      { title: 'Time', cell: m => new Date(m.timestamp).toISOString().replace('T', ' ').replace('Z', '') },
      { title: 'Key', cell: m => text(m, 'key') },
      { title: 'Value', cell: m => el('pre', { className: 'payload' }, text(m, 'value')) },
      { title: 'Headers', cell: m => Object.entries(m.headers).map(([k, v]) => `${k}=${v}`).join(', ') }
    ], shown.messages)
  return [
    el('h2', {}, 'Messages'),
    el('div', { className: 'card' },
      el('form', { className: 'inline', id: 'produce-form', onsubmit: produce }, key, value, el('button', { id: 'produce' }, 'Produce')),
      el('form', { className: 'inline', onsubmit: e => { e.preventDefault(); browse() } }, el('span', {}, 'From'), from, partition, el('button', { id: 'browse' }, 'Browse')),
      el('div', { id: 'browsed' }, results))
  ]
}

// The users page: users with their tags, their permissions per vhost; add, change, delete.
pages.users = async function () {
  const [users, permissions] = await Promise.all([api('GET', '/api/users'), api('GET', '/api/permissions')])
  const name = el('input', { id: 'new-user', placeholder: 'user name', required: true })
  const password = el('input', { id: 'new-user-password', type: 'password', placeholder: 'password', required: true, autocomplete: 'new-password' })
  const tags = el('select', { id: 'new-user-tags' }, ['administrator', 'monitoring', 'management', ''].map(t => el('option', { value: t }, t || 'none (clients only)')))
  const addUser = e => {
    e.preventDefault()
    const user = name.value.trim()
    act(`User ${user} saved`, async () => {
      await api('PUT', `/api/users/${enc(user)}`, { password: password.value, tags: tags.value })
      await api('PUT', `/api/permissions/%2F/${enc(user)}`, { configure: '.*', write: '.*', read: '.*' })
    })
  }
  const grantUser = el('select', { id: 'grant-user' }, users.map(u => el('option', { value: u.name }, u.name)))
  const grantVhost = el('input', { id: 'grant-vhost', value: '/', style: 'width: 6rem' })
  const pattern = id => el('input', { id, value: '.*', style: 'width: 7rem' })
  const configure = pattern('grant-configure')
  const write = pattern('grant-write')
  const read = pattern('grant-read')
  const grant = e => {
    e.preventDefault()
    act(`Permissions of ${grantUser.value} set`, () => api('PUT', `/api/permissions/${enc(grantVhost.value)}/${enc(grantUser.value)}`, { configure: configure.value, write: write.value, read: read.value }))
  }
  return [
    el('div', { className: 'toolbar' }, el('h2', { className: 'grow' }, `Users (${users.length})`),
      el('form', { className: 'inline', onsubmit: addUser }, name, password, tags, el('button', { id: 'add-user' }, 'Add user'))),
    el('p', { className: 'hint' }, 'A new user gets every permission on the default vhost. Tags: administrator may change everything; monitoring and management may read this UI and the API; none is for clients only.'),
    el('div', { className: 'card' }, table([
      { title: 'Name', key: 'name' },
      { title: 'Tags', cell: u => u.tags.length ? u.tags.map(t => el('span', { className: 'pill on' }, t)) : '–' },
      { title: 'Password', cell: u => u.password_hash ? 'set' : 'none' },
      { title: 'Loopback only', cell: u => u.loopback_only ? 'yes' : 'no' },
      { title: '', cell: u => el('div', { className: 'actions' }, el('button', { className: 'small danger', 'data-action': 'delete', onclick: () => confirm(`Delete user ${u.name}?`) && act(`User ${u.name} deleted`, () => api('DELETE', `/api/users/${enc(u.name)}`)) }, 'Delete')) }
    ], users)),
    el('h2', {}, 'Permissions'),
    el('form', { className: 'inline', onsubmit: grant }, grantUser, el('span', {}, 'vhost'), grantVhost, el('span', {}, 'configure'), configure, el('span', {}, 'write'), write, el('span', {}, 'read'), read, el('button', { id: 'grant' }, 'Set')),
    el('div', { className: 'card' }, table([
      { title: 'User', key: 'user' }, { title: 'Virtual host', key: 'vhost' },
      { title: 'Configure', cell: p => el('code', {}, p.configure) }, { title: 'Write', cell: p => el('code', {}, p.write) }, { title: 'Read', cell: p => el('code', {}, p.read) },
      { title: '', cell: p => el('div', { className: 'actions' }, el('button', { className: 'small danger', onclick: () => act(`Permissions of ${p.user} cleared`, () => api('DELETE', `/api/permissions/${enc(p.vhost)}/${enc(p.user)}`)) }, 'Clear')) }
    ], permissions.map(p => ({ ...p, name: `${p.user}@${p.vhost}` }))))
  ]
}

// The API page: /api/openapi.json rendered by tag, each operation with its parameters and answers.
pages.api = async function () {
  const doc = await api('GET', '/api/openapi.json')
  const byTag = new Map((doc.tags || []).map(t => [t.name, { description: t.description, operations: [] }]))
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other'
      if (!byTag.has(tag)) byTag.set(tag, { description: '', operations: [] })
      byTag.get(tag).operations.push({ method, path, op })
    }
  }
  const operation = ({ method, path, op }) => el('div', { className: 'operation', 'data-operation': op.operationId },
    el('div', {}, el('span', { className: `pill method ${method}` }, method.toUpperCase()), ' ', el('code', {}, path), ' ', el('span', {}, op.summary || '')),
    (op.parameters || []).length ? el('p', { className: 'hint' }, 'Parameters: ', (op.parameters || []).map(p => `${p.name} (${p.in})${p.description ? ': ' + p.description : ''}`).join('; ')) : null,
    el('p', { className: 'hint' }, 'Answers: ', Object.entries(op.responses || {}).map(([status, r]) => `${status} ${r.description}`).join('; ')))
  return [
    el('div', { className: 'toolbar' },
      el('h2', { className: 'grow' }, `${doc.info.title} ${doc.info.version}`),
      el('button', { id: 'download-openapi', onclick: () => saveJson(doc, 'porter-openapi.json') }, 'Download openapi.json')),
    el('p', { className: 'hint' }, doc.info.description || ''),
    ...[...byTag.entries()].filter(([, t]) => t.operations.length).map(([name, t]) =>
      el('div', { className: 'card' }, el('h3', {}, name), el('p', { className: 'hint' }, t.description || ''), t.operations.map(operation)))
  ]
}

async function render () {
  const parts = location.hash.replace(/^#\//, '').split('/').map(decodeURIComponent)
  const [page, ...args] = parts
  const detail = { queues: 'queue', topics: 'topic', groups: 'group' }[page]
  const handler = (args.length && detail) ? pages[detail] : pages[page] || pages.overview
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.page === (page || 'overview'))
  try {
    const content = await handler(...args)
    $('page').replaceChildren(...content)
  } catch (e) {
    if (e.status !== 401) $('page').replaceChildren(el('p', { className: 'error' }, `Could not load this page: ${e.message}`))
  }
}

window.addEventListener('hashchange', render)
if (state.auth) start(); else showLogin()
