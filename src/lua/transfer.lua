#!lua
-- transfer.lua: applies a batch of transfers, in order, as one atomic step on the Redis server.
--
-- Each transfer is checked (funds, accounts, amount), then applied whole or not at all: debit,
-- credit, the two bank balances and the two interbank balances when the banks differ, and one
-- event in the stream, completed or cancelled. Redis runs a script alone, so nothing else can
-- read or write between the funds check and the debit: there is no race to lose.
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
-- the transfers that were decided (all of them unless `error` says why the batch stopped):
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

-- Records the outcomes decided so far and returns them; `err` says why the batch stopped early.
local function finish(err)
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

-- Calls Redis without raising; returns the reply, or nil and the error text.
local function try(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    return nil, reply.err
  end
  return reply
end

-- Undoes writes of the current transfer, newest first. Each undo restores a value that existed a
-- moment ago, so it cannot overflow.
-- An emptied stream is removed too, so a failed first transfer leaves no trace at all.
local function undo(done)
  for j = #done, 1, -1 do
    redis.call(unpack(done[j]))
  end
  if redis.call('XLEN', events_key) == 0 then
    redis.call('DEL', events_key)
  end
end

local function integer_balance(raw)
  local value = tonumber(raw)
  if value == nil or value ~= math.floor(value) or not string.match(raw, '^-?%d+$') then
    return nil
  end
  return value
end

for i = replayed + 1, n do
  local a = argv_base + 5 * (i - 1)
  local fb, tb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local from, to, amount_text = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local from_key, to_key = KEYS[account_key_base + 2 * i - 1], KEYS[account_key_base + 2 * i]
  local id = producer .. '-' .. (first_seq + i - 1)

  local from_raw, err = try('GET', from_key)
  if err then return finish('GET ' .. from_key .. ': ' .. err) end
  local to_raw
  to_raw, err = try('GET', to_key)
  if err then return finish('GET ' .. to_key .. ': ' .. err) end

  local from_balance, to_balance
  if from_raw then
    from_balance = integer_balance(from_raw)
    if from_balance == nil then return finish(from_key .. ' holds ' .. from_raw .. ', not an integer balance') end
  end
  if to_raw then
    to_balance = integer_balance(to_raw)
    if to_balance == nil then return finish(to_key .. ' holds ' .. to_raw .. ', not an integer balance') end
  end

  local amount = nil
  if string.match(amount_text, '^[1-9]%d*$') and #amount_text <= 16 then
    amount = tonumber(amount_text)
  end
  local code
  if amount == nil or amount > MAX_SAFE_CENTS then
    code = 'A'
  elseif from == to then
    code = 'S'
  elseif from_balance == nil or to_balance == nil then
    code = 'U'
  elseif from_balance < amount then
    code = 'F'
  elseif to_balance + amount > MAX_SAFE_CENTS then
    code = 'O'
  else
    code = 'C'
  end

  local event = { 'XADD', events_key, '*', 'id', id, 'status', code == 'C' and 'completed' or 'cancelled',
    'from', from, 'to', to, 'from_bank', ARGV[3 + fb], 'to_bank', ARGV[3 + tb], 'amount', amount_text }
  if code == 'C' then
    table.insert(event, 'from_balance')
    table.insert(event, string.format('%d', from_balance - amount))
  else
    if from_balance ~= nil then
      table.insert(event, 'from_balance')
      table.insert(event, string.format('%d', from_balance))
    end
    table.insert(event, 'reason')
    table.insert(event, REASONS[code])
  end

  local done = {}
  local entry_id
  entry_id, err = try(unpack(event))
  if err then return finish('XADD ' .. events_key .. ': ' .. err) end
  done[1] = { 'XDEL', events_key, entry_id }

  if code == 'C' then
    local writes = {}
    if fb ~= tb then
      local fbal, tbal = KEYS[3 + 2 * (fb - 1)], KEYS[3 + 2 * (tb - 1)]
      local finter, tinter = KEYS[4 + 2 * (fb - 1)], KEYS[4 + 2 * (tb - 1)]
      writes = {
        { { 'INCRBY', fbal, -amount }, { 'INCRBY', fbal, amount } },
        { { 'INCRBY', tbal, amount }, { 'INCRBY', tbal, -amount } },
        { { 'HINCRBY', finter, ARGV[3 + tb], -amount }, { 'HINCRBY', finter, ARGV[3 + tb], amount } },
        { { 'HINCRBY', tinter, ARGV[3 + fb], amount }, { 'HINCRBY', tinter, ARGV[3 + fb], -amount } },
      }
    end
    table.insert(writes, { { 'INCRBY', from_key, -amount }, { 'INCRBY', from_key, amount } })
    table.insert(writes, { { 'INCRBY', to_key, amount }, { 'INCRBY', to_key, -amount } })
    for _, write in ipairs(writes) do
      local _, write_err = try(unpack(write[1]))
      if write_err then
        undo(done)
        return finish(write[1][1] .. ' ' .. write[1][2] .. ': ' .. write_err)
      end
      table.insert(done, write[2])
    end
  end
  table.insert(new_outcomes, code)
end

return finish(nil)
