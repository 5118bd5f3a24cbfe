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

-- The error text of a reply that failed, or nil.
local function failure(reply)
  return type(reply) == 'table' and reply.err or nil
end

-- A balance as a number, or nil if the text is not an integer.
local function integer_balance(raw)
  local value = tonumber(raw)
  if value == nil or value ~= math.floor(value) then
    return nil
  end
  return value
end

-- The writes of one completed transfer, described in these tables (filled anew for each transfer,
-- allocated once per call: the hot path allocates no table).
local write_key, write_field, write_delta = {}, {}, {}
local write_count = 0

local function add_write(key, field, delta)
  write_count = write_count + 1
  write_key[write_count], write_field[write_count], write_delta[write_count] = key, field, delta
end

local function do_write(j, sign)
  if write_field[j] then
    return redis.pcall('HINCRBY', write_key[j], write_field[j], sign * write_delta[j])
  end
  return redis.pcall('INCRBY', write_key[j], sign * write_delta[j])
end

-- Undoes the first `done` writes of the current transfer, newest first, then its event. Each undo
-- restores a value that existed a moment ago, so it cannot overflow. An emptied stream is removed
-- too, so a failed first transfer leaves no trace at all.
local function undo(done, entry_id)
  for j = done, 1, -1 do
    local reply = do_write(j, -1)
    assert(not failure(reply), 'undo failed')
  end
  redis.call('XDEL', events_key, entry_id)
  if redis.call('XLEN', events_key) == 0 then
    redis.call('DEL', events_key)
  end
end

for i = replayed + 1, n do
  local a = argv_base + 5 * (i - 1)
  local fb, tb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local from, to = ARGV[a + 3], ARGV[a + 4]
  local from_bank, to_bank = ARGV[3 + fb], ARGV[3 + tb]
  local from_key, to_key = KEYS[account_key_base + 2 * i - 1], KEYS[account_key_base + 2 * i]
  local id = producer .. '-' .. (first_seq + i - 1)

  local from_raw = redis.pcall('GET', from_key)
  local err = failure(from_raw)
  if err then return finish('GET ' .. from_key .. ': ' .. err) end
  local to_raw = redis.pcall('GET', to_key)
  err = failure(to_raw)
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

  local amount = tonumber(ARGV[a + 5])
  local code
  if amount == nil or amount < 1 or amount > MAX_SAFE_CENTS or amount ~= math.floor(amount) then
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

  -- Numbers reach Redis as exact integers (Redis formats them with %.17g; all are below 2^53).
  local entry
  if code == 'C' then
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'completed', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount, 'from_balance', from_balance - amount)
  elseif from_balance ~= nil then
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', ARGV[a + 5], 'from_balance', from_balance,
      'reason', REASONS[code])
  else
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', ARGV[a + 5], 'reason', REASONS[code])
  end
  err = failure(entry)
  if err then return finish('XADD ' .. events_key .. ': ' .. err) end

  if code == 'C' then
    write_count = 0
    if fb ~= tb then
      add_write(KEYS[3 + 2 * (fb - 1)], false, -amount)
      add_write(KEYS[3 + 2 * (tb - 1)], false, amount)
      add_write(KEYS[4 + 2 * (fb - 1)], to_bank, -amount)
      add_write(KEYS[4 + 2 * (tb - 1)], from_bank, amount)
    end
    add_write(from_key, false, -amount)
    add_write(to_key, false, amount)
    for j = 1, write_count do
      err = failure(do_write(j, 1))
      if err then
        undo(j - 1, entry)
        local command = write_field[j] and 'HINCRBY ' or 'INCRBY '
        return finish(command .. write_key[j] .. ': ' .. err)
      end
    end
  end
  new_outcomes[#new_outcomes + 1] = code
end

return finish(nil)
