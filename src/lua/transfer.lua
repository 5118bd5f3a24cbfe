#!lua
-- transfer.lua: applies a batch of transfers, in order, as one atomic step on the Redis server.
--
-- Each transfer is checked (funds, accounts, amount) against the balances as the transfers before
-- it in the batch left them, and gets its event in the stream, completed or cancelled. A completed
-- one moves the two accounts and, when the banks differ, the two bank balances and the two
-- interbank balances. Redis runs a script alone, so nothing else can read or write between a
-- funds check and its debit: there is no race to lose.
--
-- Speed: inside a script every redis.call costs about a microsecond, and every table, closure and
-- number formatted costs a little more, so the script is written as one straight loop: it reads
-- each account once (one MGET), keeps running balances in Lua, and writes each changed key once at
-- the end (one INCRBY per account or bank balance, two HINCRBY per interbank pair: the two sides
-- of a pair always move by opposite amounts, so one sum per pair is kept). If any of those writes
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

local MAX_SAFE_CENTS = 9007199254740991
local MAX_BATCH = 8192
-- Interbank pair (low, high) of local bank numbers is kept at index low * PAIR_STRIDE + high.
local PAIR_STRIDE = 65536
local floor = math.floor

local events_key, producer_key = KEYS[1], KEYS[2]
local producer = ARGV[1]
local first_seq, bank_count = tonumber(ARGV[2]), tonumber(ARGV[3])

if not (first_seq and bank_count and first_seq >= 1 and first_seq == floor(first_seq)
    and bank_count >= 0 and bank_count == floor(bank_count)) then
  return redis.error_reply('ERR interbank: malformed call: bad sequence or bank count')
end
local argv_base = 4 + bank_count
local n = tonumber(ARGV[argv_base])
local account_key_base = 2 + 2 * bank_count
if not (n and n >= 1 and n <= MAX_BATCH and n == floor(n))
    or #ARGV ~= argv_base + 5 * n or #KEYS ~= account_key_base + 2 * n then
  return redis.error_reply('ERR interbank: malformed call: argument or key count does not match the batch')
end
-- Shape checks of every transfer before anything is read or written.
for i = 1, n do
  local a = argv_base + 5 * (i - 1)
  local fb, tb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if not (fb and tb and fb >= 1 and tb >= 1 and fb <= bank_count and tb <= bank_count
      and fb == floor(fb) and tb == floor(tb)) then
    return redis.error_reply('ERR interbank: malformed call: bank index out of range in transfer ' .. i)
  end
end

-- Raises WRONGTYPE, before any write, if the producer key was tampered with.
local applied = redis.call('STRLEN', producer_key)
if first_seq > applied + 1 then
  return redis.error_reply('ERR interbank: sequence gap for producer ' .. producer .. ': expected at most '
    .. (applied + 1) .. ', got ' .. first_seq)
end
local replayed = applied - first_seq + 1
if replayed > n then replayed = n end
local old = ''
if replayed > 0 then
  old = redis.call('GETRANGE', producer_key, first_seq - 1, first_seq + replayed - 2)
end

-- Running balances of the accounts read so far (false: the account does not exist); changes not
-- yet written: per account (and the order accounts were first changed), per local bank number,
-- per interbank pair (what the lower-numbered bank's field for the other bank moves by); the
-- stream entries added; the outcome letters; and why the batch stopped early, if it did.
local balance = {}
local account_delta = {}
local accounts_changed = {}
local bank_delta = {}
local pair_delta = {}
local entries = {}
local codes = {}
local stop

for i = replayed + 1, n do
  local a = argv_base + 5 * (i - 1)
  local from_key, to_key = KEYS[account_key_base + 2 * i - 1], KEYS[account_key_base + 2 * i]
  -- Read the accounts not read yet; a key that cannot be read or is not an integer stops the batch.
  local from_balance, to_balance = balance[from_key], balance[to_key]
  if from_balance == nil or to_balance == nil then
    local values
    if from_balance == nil and to_balance == nil and from_key ~= to_key then
      values = redis.pcall('MGET', from_key, to_key)
    elseif from_balance == nil then
      values = redis.pcall('MGET', from_key)
    else
      values = redis.pcall('MGET', to_key)
    end
    if values.err then stop = 'MGET: ' .. values.err break end
    local j = 1
    if from_balance == nil then
      from_balance = false
      local raw = values[1]
      if raw then
        from_balance = tonumber(raw)
        if from_balance == nil or from_balance ~= floor(from_balance) then
          stop = from_key .. ' holds ' .. raw .. ', not an integer balance' break
        end
      end
      balance[from_key] = from_balance
      j = 2
      if to_key == from_key then to_balance = from_balance end
    end
    if to_balance == nil then
      to_balance = false
      local raw = values[j]
      if raw then
        to_balance = tonumber(raw)
        if to_balance == nil or to_balance ~= floor(to_balance) then
          stop = to_key .. ' holds ' .. raw .. ', not an integer balance' break
        end
      end
      balance[to_key] = to_balance
    end
  end

  local fb, tb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local from, to, amount_text = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local from_bank, to_bank = ARGV[3 + fb], ARGV[3 + tb]
  local id = producer .. '-' .. (first_seq + i - 1)
  local amount = tonumber(amount_text)
  local code, reason
  if amount == nil or amount < 1 or amount > MAX_SAFE_CENTS or amount ~= floor(amount) then
    code, reason = 'A', 'bad_amount'
  elseif from == to then
    code, reason = 'S', 'same_account'
  elseif not from_balance or not to_balance then
    code, reason = 'U', 'unknown_account'
  elseif from_balance < amount then
    code, reason = 'F', 'insufficient_funds'
  elseif to_balance + amount > MAX_SAFE_CENTS then
    code, reason = 'O', 'overflow'
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
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'from_balance', from_balance,
      'reason', reason)
  else
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'reason', reason)
  end
  if type(entry) == 'table' then stop = 'XADD ' .. events_key .. ': ' .. entry.err break end
  entries[#entries + 1] = entry

  if code == 'C' then
    balance[from_key] = from_balance - amount
    balance[to_key] = to_balance + amount
    local d = account_delta[from_key]
    if d == nil then accounts_changed[#accounts_changed + 1] = from_key d = 0 end
    account_delta[from_key] = d - amount
    d = account_delta[to_key]
    if d == nil then accounts_changed[#accounts_changed + 1] = to_key d = 0 end
    account_delta[to_key] = d + amount
    if fb ~= tb then
      bank_delta[fb] = (bank_delta[fb] or 0) - amount
      bank_delta[tb] = (bank_delta[tb] or 0) + amount
      if fb < tb then
        local p = fb * PAIR_STRIDE + tb
        pair_delta[p] = (pair_delta[p] or 0) - amount
      else
        local p = tb * PAIR_STRIDE + fb
        pair_delta[p] = (pair_delta[p] or 0) + amount
      end
    end
  end
  codes[#codes + 1] = code
end

-- Makes (sign 1) or undoes (sign -1) the first `limit` writes, in a fixed order: accounts in
-- the order first changed, bank balances, then interbank pairs. Returns how many were made and,
-- if one failed, why.
local function write(sign, limit)
  local done = 0
  for j = 1, #accounts_changed do
    local key = accounts_changed[j]
    local d = account_delta[key]
    if d ~= 0 then
      if done == limit then return done end
      local r = redis.pcall('INCRBY', key, sign * d)
      if type(r) == 'table' then return done, 'INCRBY ' .. key .. ': ' .. r.err end
      done = done + 1
    end
  end
  for b = 1, bank_count do
    local d = bank_delta[b]
    if d and d ~= 0 then
      if done == limit then return done end
      local key = KEYS[1 + 2 * b]
      local r = redis.pcall('INCRBY', key, sign * d)
      if type(r) == 'table' then return done, 'INCRBY ' .. key .. ': ' .. r.err end
      done = done + 1
    end
  end
  for low = 1, bank_count - 1 do
    for high = low + 1, bank_count do
      local d = pair_delta[low * PAIR_STRIDE + high]
      if d and d ~= 0 then
        if done == limit then return done end
        local key = KEYS[2 + 2 * low]
        local r = redis.pcall('HINCRBY', key, ARGV[3 + high], sign * d)
        if type(r) == 'table' then return done, 'HINCRBY ' .. key .. ': ' .. r.err end
        done = done + 1
        if done == limit then return done end
        key = KEYS[2 + 2 * high]
        r = redis.pcall('HINCRBY', key, ARGV[3 + low], -sign * d)
        if type(r) == 'table' then return done, 'HINCRBY ' .. key .. ': ' .. r.err end
        done = done + 1
      end
    end
  end
  return done
end

local done, failed = write(1, -1)
if failed then
  local undone = write(-1, done)
  assert(undone == done, 'undo failed')
  for j = #entries, 1, -1 do
    redis.call('XDEL', events_key, entries[j])
  end
  if #entries > 0 and redis.call('XLEN', events_key) == 0 then
    redis.call('DEL', events_key)
  end
  return { old, failed }
end
local fresh = table.concat(codes)
if #fresh > 0 then
  redis.call('APPEND', producer_key, fresh)
end
if stop then
  return { old .. fresh, stop }
end
return { old .. fresh }
