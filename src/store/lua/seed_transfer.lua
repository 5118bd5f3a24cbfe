#!lua
-- seed_transfer.lua: the Go demo's transfer (its keys, its signs, its event), made atomic and
-- idempotent: a batch of transfers applied in order as one step on the Redis server.
--
-- The demo writes, for a transfer of `a` between two banks, each as its own command: the source
-- account -a (the only step it protects), P:banks:<From> -a, P:banks:<To> +a,
-- P:balances:<From>:<To> +a, P:balances:<To>:<From> -a, the destination account +a, then one
-- stream entry in P:transactions with a single field `json`. Inside one bank only the two
-- accounts move. This script writes exactly those keys with exactly those signs, and the same
-- JSON, so the demo's own consumer reads our data as its own; but all of a transfer happens at
-- once, so a killed broker or a retried call can neither leave half of one nor apply one twice.
--
-- The event: {"err":"","from":{"iban","bank","person","ammount"},"to":{...},"ammount":a,
-- "status":s} ("ammount" is the demo's spelling). from.ammount is the source balance read before
-- the debit; to.ammount the destination's balance as loaded from the accounts file (as the demo
-- does). status 2 completed, 3 cancelled (insufficient funds; a transfer of the whole balance is
-- allowed), 4 error with `err` set (an account that is missing, or the same account twice).
--
-- Idempotency, as in transfer.lua: a producer (one broker worker) numbers its transfers 1, 2,
-- 3...; its outcome string (under our prefix, where the demo's consumer never looks) holds one
-- letter per applied transfer. A transfer already applied is answered with its first outcome.
--
-- KEYS[1] the stream P:transactions, KEYS[2] the producer's outcome string, KEYS[3] the hash of
--   account holders' names by IBAN, KEYS[4] the hash of initial balances by IBAN, then for each
--   transfer i six keys, KEYS[4 + 6*(i-1) + 1..6]: source account, destination account,
--   P:banks:<From>, P:banks:<To>, P:balances:<From>:<To>, P:balances:<To>:<From>.
-- ARGV[1] producer id, ARGV[2] first sequence, ARGV[3] transfer count n, then for each transfer
--   five values: source IBAN, destination IBAN, source bank, destination bank, amount in cents.
--
-- Returns the outcome letters (C completed, F insufficient funds, U unknown account, S same
-- account, A bad amount), or { letters, code, message } when the call stopped: NOPERM (the ACL
-- user may not run a command on that key, asked with redis.acl_check_cmd), BADKEY (an account
-- holds no integer) or FAILED. A stopped call is undone whole (its writes reversed, its events
-- deleted, no letter recorded): the letters returned then are only those of transfers applied by
-- an earlier call. Refused calls answer an error reply: SEQGAP (the sequence is past the
-- producer's last + 1) or BADCALL (keys and arguments do not match).
--
-- Order: every read first (nothing is written if one fails), then the events, then the money,
-- then the letters; a failure at any write undoes what the call wrote before it.
--
-- The `#!lua` line (no flags) makes Redis refuse the whole script up front when it is out of
-- memory, instead of failing halfway through.

local MAX_SAFE_CENTS = 9007199254740991
local MAX_BATCH = 8192
local FIRST_TRANSFER_KEY = 4
local CANONICAL = '^[1-9]%d*$'

local producer = ARGV[1]
local first_seq = ARGV[2] and string.find(ARGV[2], CANONICAL) and tonumber(ARGV[2])
local n = ARGV[3] and string.find(ARGV[3], CANONICAL) and tonumber(ARGV[3])
if not producer or not first_seq or first_seq > MAX_SAFE_CENTS or not n or n > MAX_BATCH then
  return redis.error_reply('BADCALL interbank: malformed call: bad producer, sequence or count')
end
if #KEYS ~= FIRST_TRANSFER_KEY + 6 * n or #ARGV ~= 3 + 5 * n then
  return redis.error_reply('BADCALL interbank: malformed call: argument or key count does not match the batch')
end

local stream, producer_key, people_key, initial_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local applied = redis.call('STRLEN', producer_key)
if first_seq > applied + 1 then
  return redis.error_reply('SEQGAP interbank: sequence gap for producer ' .. producer .. ': expected at most '
    .. (applied + 1) .. ', got ' .. first_seq)
end

-- The letters of the transfers of this call already applied by an earlier call.
local repeated = math.min(applied - first_seq + 1, n)
local old = ''
if repeated > 0 then
  old = redis.call('GETRANGE', producer_key, first_seq - 1, first_seq - 2 + repeated)
end

-- Why the call stopped: NOPERM when the ACL user may not run the command on that key (Redis 7.0
-- reports a denied command inside a script as a plain ERR), else FAILED.
local function failure(command, key, err)
  local code = 'FAILED'
  if not redis.acl_check_cmd(command, key) then code = 'NOPERM' end
  return { old, code, command .. ' ' .. key .. ': ' .. err }
end

local function failed(reply) return type(reply) == 'table' and reply.err end

-- Reads: each account once, the names and loaded balances of the parties.
local balances, names, initial = {}, {}, {}
local function read_balance(key)
  if balances[key] ~= nil then return nil end
  local raw = redis.pcall('GET', key)
  if failed(raw) then return failure('GET', key, raw.err) end
  if not raw then balances[key] = false; return nil end
  local value = tonumber(raw)
  if value == nil or value ~= math.floor(value) then
    return { old, 'BADKEY', key .. ' holds ' .. raw .. ', not an integer balance' }
  end
  balances[key] = value
  return nil
end
for i = repeated + 1, n do
  local k, a = FIRST_TRANSFER_KEY + 6 * (i - 1), 3 + 5 * (i - 1)
  local stop = read_balance(KEYS[k + 1]) or read_balance(KEYS[k + 2])
  if stop then return stop end
  local people = redis.pcall('HMGET', people_key, ARGV[a + 1], ARGV[a + 2])
  if failed(people) then return failure('HMGET', people_key, people.err) end
  names[i] = people
  local loaded = redis.pcall('HGET', initial_key, ARGV[a + 2])
  if failed(loaded) then return failure('HGET', initial_key, loaded.err) end
  initial[i] = tonumber(loaded or '0') or 0
end

local function integer(value) return string.format('%.0f', value) end

-- One party of the event, as the demo writes it.
local function party(iban, bank, person, balance)
  return '{"iban":' .. cjson.encode(iban) .. ',"bank":' .. cjson.encode(bank) .. ',"person":'
    .. cjson.encode(person or '') .. ',"ammount":' .. integer(balance or 0) .. '}'
end

local function event(err, from, to, amount, status)
  return '{"err":' .. cjson.encode(err) .. ',"from":' .. from .. ',"to":' .. to .. ',"ammount":'
    .. integer(amount) .. ',"status":' .. status .. '}'
end

-- Decisions, against the balances as the transfers before each left them.
local letters, events, writes = {}, {}, {}
for i = repeated + 1, n do
  local k, a = FIRST_TRANSFER_KEY + 6 * (i - 1), 3 + 5 * (i - 1)
  local from_iban, to_iban, from_bank, to_bank = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local amount = string.find(ARGV[a + 5], CANONICAL) and tonumber(ARGV[a + 5])
  local from_key, to_key = KEYS[k + 1], KEYS[k + 2]
  local from_balance, to_balance = balances[from_key], balances[to_key]
  local letter, status, err = 'C', 2, ''
  if not amount or amount > MAX_SAFE_CENTS then
    letter, status, err = 'A', 4, 'bad amount'
  elseif from_key == to_key then
    letter, status, err = 'S', 4, 'same account'
  elseif not from_balance or not to_balance then
    letter, status, err = 'U', 4, 'unknown account'
  elseif from_balance < amount then
    letter, status = 'F', 3
  end
  if letter == 'C' then
    table.insert(writes, { from_key, 'DECRBY', amount })
    if from_bank ~= to_bank then
      table.insert(writes, { KEYS[k + 3], 'DECRBY', amount })
      table.insert(writes, { KEYS[k + 4], 'INCRBY', amount })
      table.insert(writes, { KEYS[k + 5], 'INCRBY', amount })
      table.insert(writes, { KEYS[k + 6], 'DECRBY', amount })
    end
    table.insert(writes, { to_key, 'INCRBY', amount })
    balances[from_key] = from_balance - amount
    balances[to_key] = to_balance + amount
  end
  local from = party(from_iban, from_bank, names[i][1], from_balance or 0)
  local to = party(to_iban, to_bank, names[i][2], initial[i])
  table.insert(events, event(err, from, to, amount or 0, status))
  table.insert(letters, letter)
end

-- Writes, all or none: what was written before a failure is undone.
local added, made = {}, 0
local function undo()
  for j = made, 1, -1 do
    local w = writes[j]
    redis.pcall(w[2] == 'INCRBY' and 'DECRBY' or 'INCRBY', w[1], w[3])
  end
  for _, id in ipairs(added) do redis.pcall('XDEL', stream, id) end
end
for _, json in ipairs(events) do
  local id = redis.pcall('XADD', stream, '*', 'json', json)
  if failed(id) then undo(); return failure('XADD', stream, id.err) end
  table.insert(added, id)
end
for j, w in ipairs(writes) do
  local reply = redis.pcall(w[2], w[1], w[3])
  if failed(reply) then undo(); return failure(w[2], w[1], reply.err) end
  made = j
end
local fresh = table.concat(letters)
if #fresh > 0 then
  local reply = redis.pcall('APPEND', producer_key, fresh)
  if failed(reply) then undo(); return failure('APPEND', producer_key, reply.err) end
end
return old .. fresh
