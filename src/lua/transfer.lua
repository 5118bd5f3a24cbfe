#!lua
-- transfer.lua: applies a batch of transfers, in order, as one atomic step on the Redis server.
--
-- Each transfer is checked (funds, accounts, amount) against the balances as the transfers before
-- it in the batch left them, and gets its event in the stream, completed or cancelled. A completed
-- one moves the two accounts and, when the banks differ, the two bank balances and the two
-- interbank balances. Redis runs a script alone, so nothing else can read or write between a
-- funds check and its debit: there is no race to lose.
--
-- Speed: inside a script every redis.call costs about a microsecond, so the batch reads each
-- account once, keeps running balances in Lua, and writes each changed key once at the end (one
-- INCRBY per account or bank balance, one HINCRBY per interbank pair). If any of those writes
-- fails (a key of the wrong type, say), the writes already made and the batch's events are undone
-- and no outcome is recorded: the whole batch is as if never sent.
--
-- Idempotency: every transfer has a producer (one broker worker) and a sequence number, 1, 2, 3...
-- The producer key holds one outcome letter per applied transfer, so its length is the last
-- sequence applied. A transfer whose sequence is already there is not applied again: its first
-- outcome is read back and returned. A retry after a dropped connection is therefore safe, and
-- costs one STRLEN and one APPEND per call, not one key per transfer.
--
-- The `#!lua` line (no flags) makes Redis refuse the whole script up front when it is out of
-- memory, instead of failing halfway through.
--
-- KEYS[1]                     the events stream
-- KEYS[2]                     the producer's outcome string
-- KEYS[3 + 2*(b-1)]           bank b's balance         (b = 1..bank_count)
-- KEYS[4 + 2*(b-1)]           bank b's interbank hash
-- KEYS[A + 2*i - 1], KEYS[A + 2*i]  transfer i's source and destination account, A = 2 + 2*bank_count
-- ARGV[1] producer id, ARGV[2] first sequence, ARGV[3] bank_count, ARGV[3 + b] bank b's name,
-- ARGV[4 + bank_count] transfer count n, then for each transfer five values:
--   source bank index, destination bank index, source IBAN, destination IBAN, amount in cents.
--
-- Returns { outcomes } or { outcomes, error }: one letter per transfer of the batch, in order, for
-- the transfers that were applied (all of them unless `error` says why the batch stopped; the
-- transfers before a source or destination that cannot be read are applied, none after it):
--   C completed, F cancelled: insufficient funds, U cancelled: unknown account,
--   S cancelled: same account, A cancelled: bad amount, O cancelled: balance would overflow.

-- The largest integer a Lua number (an IEEE double) holds exactly: 2^53 - 1.
local MAX_SAFE_CENTS = 9007199254740991
local MAX_BATCH = 8192

local REASONS = {
  F = 'insufficient_funds', U = 'unknown_account', S = 'same_account',
  A = 'bad_amount', O = 'overflow',
}

local events_key = KEYS[1]
local producer_key = KEYS[2]
local producer = ARGV[1]
local first_seq = tonumber(ARGV[2])
local bank_count = tonumber(ARGV[3])

local function is_count(x)
  return x ~= nil and x >= 0 and x == math.floor(x)
end

if not (is_count(first_seq) and first_seq >= 1 and is_count(bank_count)) then
  return redis.error_reply('ERR interbank: malformed call: bad sequence or bank count')
end
local n = tonumber(ARGV[4 + bank_count])
local argv_base = 4 + bank_count
local account_key_base = 2 + 2 * bank_count
if not (is_count(n) and n >= 1 and n <= MAX_BATCH)
    or #ARGV ~= argv_base + 5 * n or #KEYS ~= account_key_base + 2 * n then
  return redis.error_reply('ERR interbank: malformed call: argument or key count does not match the batch')
end

-- Shape checks of every transfer before anything is read or written.
for i = 1, n do
  local a = argv_base + 5 * (i - 1)
  local fb, tb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if not (is_count(fb) and is_count(tb) and fb >= 1 and tb >= 1 and fb <= bank_count and tb <= bank_count) then
    return redis.error_reply('ERR interbank: malformed call: bank index out of range in transfer ' .. i)
  end
end

-- Raises WRONGTYPE, before any write, if the producer key was tampered with.
local applied = redis.call('STRLEN', producer_key)
if first_seq > applied + 1 then
  return redis.error_reply('ERR interbank: sequence gap for producer ' .. producer .. ': expected at most '
    .. (applied + 1) .. ', got ' .. first_seq)
end

local outcomes = {}
local replayed = math.min(n, applied - first_seq + 1)
if replayed > 0 then
  outcomes[1] = redis.call('GETRANGE', producer_key, first_seq - 1, first_seq + replayed - 2)
end

local new_outcomes = {}

-- The error text of a reply that failed, or nil.
local function failure(reply)
  return type(reply) == 'table' and reply.err or nil
end

-- Running balances of the accounts this batch has read (false: the account does not exist),
-- and the changes not yet written, in the order keys were first changed.
local balance = {}
local delta = {}
local changed = {}
local interbank_delta = {}
local interbank_key, interbank_field = {}, {}
local entries = {}

local function change(key, amount)
  if delta[key] == nil then
    delta[key] = 0
    changed[#changed + 1] = key
  end
  delta[key] = delta[key] + amount
end

local function change_interbank(key, field, amount)
  local fields = interbank_delta[key]
  if fields == nil then
    fields = {}
    interbank_delta[key] = fields
  end
  if fields[field] == nil then
    fields[field] = 0
    interbank_key[#interbank_key + 1], interbank_field[#interbank_field + 1] = key, field
  end
  fields[field] = fields[field] + amount
end

-- Removes this batch's events; an emptied stream is removed too, so nothing is left.
local function remove_events()
  for j = #entries, 1, -1 do
    redis.call('XDEL', events_key, entries[j])
  end
  if #entries > 0 and redis.call('XLEN', events_key) == 0 then
    redis.call('DEL', events_key)
  end
end

-- Undoes the first `done` account and bank writes and `done_interbank` interbank writes, newest
-- first, then the events. Each undo restores a value that existed a moment ago, so it cannot fail.
local function undo(done, done_interbank)
  for j = done_interbank, 1, -1 do
    local key, field = interbank_key[j], interbank_field[j]
    assert(not failure(redis.pcall('HINCRBY', key, field, -interbank_delta[key][field])), 'undo failed')
  end
  for j = done, 1, -1 do
    assert(not failure(redis.pcall('INCRBY', changed[j], -delta[changed[j]])), 'undo failed')
  end
  remove_events()
end

-- Writes every change; on a failure, undoes everything of the batch and returns the error.
local function flush()
  for j = 1, #changed do
    local key = changed[j]
    if delta[key] ~= 0 then
      local err = failure(redis.pcall('INCRBY', key, delta[key]))
      if err then
        undo(j - 1, 0)
        return 'INCRBY ' .. key .. ': ' .. err
      end
    end
  end
  for j = 1, #interbank_key do
    local key, field = interbank_key[j], interbank_field[j]
    if interbank_delta[key][field] ~= 0 then
      local err = failure(redis.pcall('HINCRBY', key, field, interbank_delta[key][field]))
      if err then
        undo(#changed, j - 1)
        return 'HINCRBY ' .. key .. ': ' .. err
      end
    end
  end
  return nil
end

-- Applies what was decided, records the outcomes and returns them; `err` says why the batch
-- stopped before its end. If the writes fail, nothing of the batch remains.
local function finish(err)
  local write_err = flush()
  if write_err then
    return { table.concat(outcomes), write_err }
  end
  local fresh = table.concat(new_outcomes)
  if #fresh > 0 then
    redis.call('APPEND', producer_key, fresh)
  end
  local all = table.concat(outcomes) .. fresh
  if err then
    return { all, err }
  end
  return { all }
end

-- Turns a stored balance into a number (false when the account does not exist), or returns nil
-- and an error text when the key does not hold an integer.
local function parse_balance(key, raw)
  if not raw then return false end
  local value = tonumber(raw)
  if value == nil or value ~= math.floor(value) then
    return nil, key .. ' holds ' .. raw .. ', not an integer balance'
  end
  return value
end

-- Reads the balances of accounts not read yet (one MGET for both when neither is known).
-- Returns an error text if a key cannot be read or does not hold an integer.
local function read_balances(from_key, to_key)
  local need_from, need_to = balance[from_key] == nil, balance[to_key] == nil and to_key ~= from_key
  local values, err
  if need_from and need_to then
    values = redis.pcall('MGET', from_key, to_key)
  elseif need_from then
    values = redis.pcall('MGET', from_key)
  elseif need_to then
    values = redis.pcall('MGET', to_key)
  else
    return nil
  end
  err = failure(values)
  if err then return 'MGET ' .. from_key .. ' ' .. to_key .. ': ' .. err end
  local next_value = 1
  if need_from then
    balance[from_key], err = parse_balance(from_key, values[1])
    if err then return err end
    next_value = 2
  end
  if need_to then
    balance[to_key], err = parse_balance(to_key, values[next_value])
    if err then return err end
  end
  return nil
end

for i = replayed + 1, n do
  local a = argv_base + 5 * (i - 1)
  local fb, tb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local from, to = ARGV[a + 3], ARGV[a + 4]
  local from_bank, to_bank = ARGV[3 + fb], ARGV[3 + tb]
  local from_key, to_key = KEYS[account_key_base + 2 * i - 1], KEYS[account_key_base + 2 * i]
  local id = producer .. '-' .. (first_seq + i - 1)

  local err = read_balances(from_key, to_key)
  if err then return finish(err) end
  local from_balance, to_balance = balance[from_key], balance[to_key]

  local amount = tonumber(ARGV[a + 5])
  local code
  if amount == nil or amount < 1 or amount > MAX_SAFE_CENTS or amount ~= math.floor(amount) then
    code = 'A'
  elseif from == to then
    code = 'S'
  elseif not from_balance or not to_balance then
    code = 'U'
  elseif from_balance < amount then
    code = 'F'
  elseif to_balance + amount > MAX_SAFE_CENTS then
    code = 'O'
  else
    code = 'C'
  end

  -- Numbers reach Redis as exact integers (Redis formats them with %.17g; all are below 2^53).
  local entry
  if code == 'C' then
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'completed', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount, 'from_balance', from_balance - amount)
  elseif from_balance then
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', ARGV[a + 5], 'from_balance', from_balance,
      'reason', REASONS[code])
  else
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', ARGV[a + 5], 'reason', REASONS[code])
  end
  err = failure(entry)
  if err then return finish('XADD ' .. events_key .. ': ' .. err) end
  entries[#entries + 1] = entry

  if code == 'C' then
    balance[from_key] = from_balance - amount
    balance[to_key] = to_balance + amount
    change(from_key, -amount)
    change(to_key, amount)
    if fb ~= tb then
      change(KEYS[3 + 2 * (fb - 1)], -amount)
      change(KEYS[3 + 2 * (tb - 1)], amount)
      change_interbank(KEYS[4 + 2 * (fb - 1)], to_bank, -amount)
      change_interbank(KEYS[4 + 2 * (tb - 1)], from_bank, amount)
    end
  end
  new_outcomes[#new_outcomes + 1] = code
end

return finish(nil)
