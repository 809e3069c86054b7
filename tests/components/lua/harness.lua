-- Runs components/lua/content_capture.lua as Envoy would, on bodies read from files, and prints the
-- dynamic metadata it set as JSON. Used by tests/components/test_content_capture.py.
--   lua harness.lua SCRIPT POLICY REQUEST_FILE RESPONSE_FILE CHUNK_SIZE [nobit]
local script, policy, request_file, response_file, chunk_size, nobit = unpack(arg)
chunk_size = tonumber(chunk_size)
if nobit == "nobit" then
  SOVSTACK_NO_BIT = true
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local store = {}
local Metadata = {}
function Metadata:set(namespace, key, value)
  store[namespace] = store[namespace] or {}
  store[namespace][key] = value
end
function Metadata:get(namespace)
  return store[namespace]
end

local function handle(body)
  local h = {}
  function h:filterContext()
    if policy == "-" then
      return {}
    end
    return {capture = policy}
  end
  function h:bodyChunks()
    local i = 1
    return function()
      if i > #body then
        return nil
      end
      local piece = string.sub(body, i, i + chunk_size - 1)
      i = i + chunk_size
      return {
        length = function() return #piece end,
        getBytes = function(_, start, length) return string.sub(piece, start + 1, start + length) end,
      }
    end
  end
  function h:streamInfo()
    return {dynamicMetadata = function() return Metadata end}
  end
  return h
end

dofile(script)
envoy_on_request(handle(read(request_file)))
envoy_on_response(handle(read(response_file)))

local function encode(v)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = encode(k) .. ":" .. encode(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
    end) .. '"'
  elseif t == "number" then
    return string.format("%.17g", v)
  end
  return tostring(v)
end
io.write(encode(store["sovstack.content"] or {}))
