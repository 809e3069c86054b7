-- sovstack content capture: an Envoy Lua HTTP filter (Envoy Gateway EnvoyExtensionPolicy `lua`).
--
-- For each request through a model gateway it writes dynamic metadata in the namespace
-- "sovstack.content", which the gateway's JSON access log reads into the inference record:
--   capture        the content policy applied to this request: "none", "digest" or "full"
--   prompt         {sha256, bytes[, text]} of the request body, byte for byte as received
--   output         {sha256, bytes[, text]} of the response body, byte for byte as sent (a stream's
--                  bytes in order, server-sent-event framing included)
--   input_tokens   the last `"prompt_tokens": N` in the response body (vLLM's `usage`)
--   output_tokens  the last `"completion_tokens": N` in the response body
-- Bodies are read with bodyChunks(): each chunk goes on to the client as it arrives; Envoy buffers
-- nothing, so streams stay streams and no body size limit applies. Under "full" the text is kept only
-- for bodies of valid UTF-8 up to FULL_TEXT_MAX bytes each; otherwise the record says "digest".
-- The policy is the filter context's `capture`; a missing or unknown one means "digest".
--
-- Lua 5.1 only: LuaJIT's `bit` library where it exists (Envoy), plain arithmetic elsewhere (Envoy
-- Gateway's validator runs the script in gopher-lua, with no `require`). Source of the API used:
-- https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/lua_filter
-- (bodyChunks, streamInfo():dynamicMetadata(), filterContext).

local NAMESPACE = "sovstack.content"
local FULL_TEXT_MAX = 1048576
local POLICIES = {none = true, digest = true, full = true}
local TWO32 = 4294967296

-- ------------------------------------------------------------------ 32-bit operations, two ways
-- Plain arithmetic on numbers in [0, 2^32): where no `bit` library exists.
local band, bxor, bnot, rshift, rrotate

local function use_arithmetic()
  -- Byte tables for AND and XOR, built once from nibbles.
  local nand, nxor = {}, {}
  for x = 0, 15 do
    for y = 0, 15 do
      local a, o, p = 0, 1, 0
      local xx, yy = x, y
      for _ = 1, 4 do
        local bx, by = xx % 2, yy % 2
        if bx == 1 and by == 1 then a = a + o end
        if bx ~= by then p = p + o end
        xx, yy, o = (xx - bx) / 2, (yy - by) / 2, o * 2
      end
      nand[x * 16 + y], nxor[x * 16 + y] = a, p
    end
  end
  local AND, XOR = {}, {}
  for x = 0, 255 do
    local xl = x % 16
    local xh = (x - xl) / 16
    for y = 0, 255 do
      local yl = y % 16
      local yh = (y - yl) / 16
      AND[x * 256 + y] = nand[xh * 16 + yh] * 16 + nand[xl * 16 + yl]
      XOR[x * 256 + y] = nxor[xh * 16 + yh] * 16 + nxor[xl * 16 + yl]
    end
  end
  local function op(t, x, y)
    local r, m = 0, 1
    for _ = 1, 4 do
      local a, b = x % 256, y % 256
      r = r + t[a * 256 + b] * m
      x, y, m = (x - a) / 256, (y - b) / 256, m * 256
    end
    return r
  end
  band = function(x, y) return op(AND, x, y) end
  bxor = function(x, y) return op(XOR, x, y) end
  bnot = function(x) return TWO32 - 1 - x end
  rshift = function(x, n) return math.floor(x / 2 ^ n) end
  rrotate = function(x, n)
    local low = x % 2 ^ n
    return (x - low) / 2 ^ n + low * 2 ^ (32 - n)
  end
end

-- -------------------------------------------------------------------------------- SHA-256
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local compress, word, hex

if type(bit) == "table" and not SOVSTACK_NO_BIT then
  -- LuaJIT (Envoy): signed 32-bit words, bit operations, additions wrapped by tobit.
  local b = bit
  local band, bxor, bnot, ror, rshift, tobit = b.band, b.bxor, b.bnot, b.ror, b.rshift, b.tobit
  local KB = {}
  for j = 1, 64 do KB[j] = tobit(K[j]) end
  local w = {}
  compress = function(H, s, i)
    for j = 1, 16 do
      local p = i + (j - 1) * 4
      local a1, b1, c1, d1 = string.byte(s, p, p + 3)
      w[j] = b.bor(b.lshift(a1, 24), b.lshift(b1, 16), b.lshift(c1, 8), d1)
    end
    for j = 17, 64 do
      local x, y = w[j - 15], w[j - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[j] = tobit(w[j - 16] + s0 + w[j - 7] + s1)
    end
    local a, c2, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
    for j = 1, 64 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + KB[j] + w[j])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, c2), band(a, c), band(c2, c))
      h, g, f, e, d, c, c2, a = g, f, e, tobit(d + t1), c, c2, a, tobit(t1 + S0 + maj)
    end
    H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + c2), tobit(H[3] + c), tobit(H[4] + d)
    H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
  end
  word = tobit
  hex = function(x) return b.tohex(x, 8) end
else
  use_arithmetic()
  compress = function(H, s, i)
    local w = {}
    for j = 1, 16 do
      local p = i + (j - 1) * 4
      local a, b, c, d = string.byte(s, p, p + 3)
      w[j] = ((a * 256 + b) * 256 + c) * 256 + d
    end
    for j = 17, 64 do
      local x, y = w[j - 15], w[j - 2]
      local s0 = bxor(bxor(rrotate(x, 7), rrotate(x, 18)), rshift(x, 3))
      local s1 = bxor(bxor(rrotate(y, 17), rrotate(y, 19)), rshift(y, 10))
      w[j] = (w[j - 16] + s0 + w[j - 7] + s1) % TWO32
    end
    local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
    for j = 1, 64 do
      local S1 = bxor(bxor(rrotate(e, 6), rrotate(e, 11)), rrotate(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = (h + S1 + ch + K[j] + w[j]) % TWO32
      local S0 = bxor(bxor(rrotate(a, 2), rrotate(a, 13)), rrotate(a, 22))
      local maj = bxor(bxor(band(a, b), band(a, c)), band(b, c))
      local t2 = (S0 + maj) % TWO32
      h, g, f, e, d, c, b, a = g, f, e, (d + t1) % TWO32, c, b, a, (t1 + t2) % TWO32
    end
    H[1], H[2], H[3], H[4] = (H[1] + a) % TWO32, (H[2] + b) % TWO32, (H[3] + c) % TWO32, (H[4] + d) % TWO32
    H[5], H[6], H[7], H[8] = (H[5] + e) % TWO32, (H[6] + f) % TWO32, (H[7] + g) % TWO32, (H[8] + h) % TWO32
  end
  word = function(x) return x end
  -- Two 16-bit halves: "%x" of a number above 2^31 is not portable across Lua runtimes.
  hex = function(x) return string.format("%04x%04x", math.floor(x / 65536), x % 65536) end
end

local function sha256_new()
  return {
    H = {
      word(0x6a09e667), word(0xbb67ae85), word(0x3c6ef372), word(0xa54ff53a),
      word(0x510e527f), word(0x9b05688c), word(0x1f83d9ab), word(0x5be0cd19),
    },
    pending = "",
    length = 0,
  }
end

local function sha256_update(state, data)
  state.length = state.length + #data
  local s = state.pending .. data
  local blocks = #s - #s % 64
  for i = 1, blocks, 64 do
    compress(state.H, s, i)
  end
  state.pending = string.sub(s, blocks + 1)
end

local function sha256_hex(state)
  local bits = state.length * 8
  local tail = state.pending .. "\128" .. string.rep("\0", (55 - #state.pending) % 64)
  local size = {}
  for k = 8, 1, -1 do
    local byte = bits % 256
    size[k] = string.char(byte)
    bits = (bits - byte) / 256
  end
  tail = tail .. table.concat(size)
  local H = {state.H[1], state.H[2], state.H[3], state.H[4], state.H[5], state.H[6], state.H[7], state.H[8]}
  for i = 1, #tail, 64 do
    compress(H, tail, i)
  end
  local out = {}
  for k = 1, 8 do
    out[k] = hex(H[k])
  end
  return table.concat(out)
end

-- ------------------------------------------------------------------------------- helpers
local function valid_utf8(s)
  if not string.find(s, "[\128-\255]") then
    return true
  end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    local extra
    if c < 0x80 then
      extra = 0
    elseif c >= 0xC2 and c <= 0xDF then
      extra = 1
    elseif c >= 0xE0 and c <= 0xEF then
      extra = 2
    elseif c >= 0xF0 and c <= 0xF4 then
      extra = 3
    else
      return false
    end
    if i + extra > n then
      return false
    end
    for k = 1, extra do
      local cc = string.byte(s, i + k)
      if cc < 0x80 or cc > 0xBF then
        return false
      end
    end
    if extra == 2 then
      local c2 = string.byte(s, i + 1)
      if (c == 0xE0 and c2 < 0xA0) or (c == 0xED and c2 > 0x9F) then
        return false -- overlong, or a UTF-16 surrogate
      end
    elseif extra == 3 then
      local c2 = string.byte(s, i + 1)
      if (c == 0xF0 and c2 < 0x90) or (c == 0xF4 and c2 > 0x8F) then
        return false -- overlong, or beyond U+10FFFF
      end
    end
    i = i + extra + 1
  end
  return true
end

local function policy_of(handle)
  local ok, context = pcall(function() return handle:filterContext() end)
  local policy = ok and context and context["capture"] or nil
  if type(policy) == "string" and POLICIES[policy] then
    return policy
  end
  return "digest"
end

-- Reads every chunk of a body as it passes; returns {sha256, bytes[, text]} (nil for an empty body)
-- and whether the text was kept. `on_chunk` sees every chunk too (the token counter).
local function read_body(handle, policy, on_chunk)
  local digest = policy ~= "none" and sha256_new() or nil
  local parts, kept, bytes = {}, policy == "full", 0
  for chunk in handle:bodyChunks() do
    local data = chunk:getBytes(0, chunk:length())
    bytes = bytes + #data
    if digest then
      sha256_update(digest, data)
    end
    if kept then
      if bytes > FULL_TEXT_MAX then
        kept, parts = false, {}
      else
        parts[#parts + 1] = data
      end
    end
    if on_chunk then
      on_chunk(data)
    end
  end
  if not digest or bytes == 0 then
    return nil, kept
  end
  local field = {sha256 = sha256_hex(digest), bytes = bytes}
  if kept then
    local text = table.concat(parts)
    if valid_utf8(text) then
      field.text = text
    else
      kept = false
    end
  end
  return field, kept
end

local function metadata(handle)
  return handle:streamInfo():dynamicMetadata()
end

-- ------------------------------------------------------------------------- the two entry points
function envoy_on_request(request_handle)
  local policy = policy_of(request_handle)
  local prompt, kept = read_body(request_handle, policy, nil)
  local meta = metadata(request_handle)
  meta:set(NAMESPACE, "capture", (policy == "full" and not kept and prompt) and "digest" or policy)
  if prompt then
    meta:set(NAMESPACE, "prompt", prompt)
  end
end

function envoy_on_response(response_handle)
  local policy = policy_of(response_handle)
  local usage = {tail = ""}
  local function count_tokens(data)
    local text = usage.tail .. data
    for n in string.gmatch(text, '"prompt_tokens"%s*:%s*(%d+)') do
      usage.input = tonumber(n)
    end
    for n in string.gmatch(text, '"completion_tokens"%s*:%s*(%d+)') do
      usage.output = tonumber(n)
    end
    usage.tail = string.sub(text, -64)
  end
  local output, kept = read_body(response_handle, policy, count_tokens)
  local meta = metadata(response_handle)
  if usage.input then
    meta:set(NAMESPACE, "input_tokens", usage.input)
  end
  if usage.output then
    meta:set(NAMESPACE, "output_tokens", usage.output)
  end
  if output then
    meta:set(NAMESPACE, "output", output)
  end
  if policy == "full" then
    -- Text is kept for both bodies or for neither: a record says one policy for both.
    local current = meta:get(NAMESPACE)
    local prompt = type(current) == "table" and current["prompt"] or nil
    local prompt_kept = type(current) ~= "table" or current["capture"] ~= "digest"
    if not (prompt_kept and (kept or not output)) then
      meta:set(NAMESPACE, "capture", "digest")
      if type(prompt) == "table" and prompt["text"] then
        meta:set(NAMESPACE, "prompt", {sha256 = prompt["sha256"], bytes = prompt["bytes"]})
      end
      if output and output.text then
        meta:set(NAMESPACE, "output", {sha256 = output.sha256, bytes = output.bytes})
      end
    end
  end
end
