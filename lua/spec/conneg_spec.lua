-- Unit tests for detailpage.conneg: Accept-Encoding and If-None-Match.
-- Run from the repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local conneg = require "detailpage.conneg"

describe("conneg.gzip_ok", function()
    local cases = {
        { nil, false },
        { "", false },
        { "gzip", true },
        { "GZip", true },
        { "x-gzip", true },
        { "gzip, deflate, br", true },
        { "deflate, br", false },
        { "br;q=1.0, gzip;q=0.8, *;q=0.1", true },
        { "gzip;q=0", false },
        { "gzip; q=0.000", false },
        { "gzip;q=0, *", false },       -- an explicit no beats *
        { "*", true },
        { "*;q=0", false },
        { "identity", false },
        { "gzip;q=0.5, identity", false }, -- identity preferred (q 1)
        { "gzip, identity;q=0.5", true },
        { "gzip;q=0.5, identity;q=0.5", true },
        { "gzip;q=abc", false },        -- not a qvalue: no
        { "gzip;q=2", false },
        { "gzip;q=.5", false },
        { " gzip ; q=1 ", true },
        { ",,gzip,,", true },
        { "gzipx", false },
        { "deflate;q=0.5;gzip", false }, -- a parameter, not a coding
    }
    for _, c in ipairs(cases) do
        it(("%q → %s"):format(tostring(c[1]), tostring(c[2])), function()
            assert.equal(c[2], conneg.gzip_ok(c[1]))
            -- and again, from the per-worker cache
            assert.equal(c[2], conneg.gzip_ok(c[1]))
        end)
    end

    it("keeps answering right past its cache's size", function()
        for i = 1, 500 do
            assert.is_true(conneg.gzip_ok("gzip, x" .. i))
            assert.is_false(conneg.gzip_ok("br, x" .. i))
        end
    end)
end)

describe("conneg.not_modified", function()
    local tag = '"p7-s3.2-0a1b2c3d-gz"'
    local cases = {
        { nil, false },
        { "", false },
        { tag, true },
        { "*", true },
        { " * ", true },
        { 'W/' .. tag, true },           -- weak comparison
        { '"x", ' .. tag, true },
        { '"x",W/' .. tag .. ', "y"', true },
        { '"p7-s3.2-0a1b2c3d"', false },  -- the other encoding's tag
        { '"p7-s3.2-0a1b2c3d-gz", "z"', true },
        { 'p7-s3.2-0a1b2c3d-gz', false }, -- no quotes: not an entity tag
        { 'X/' .. tag, false },
        { '"*"', false },
    }
    for _, c in ipairs(cases) do
        it(("%q → %s"):format(tostring(c[1]), tostring(c[2])), function()
            assert.equal(c[2], conneg.not_modified(c[1], tag))
        end)
    end

    it("never matches without a tag of ours", function()
        assert.is_false(conneg.not_modified("*", nil))
        assert.is_false(conneg.not_modified(tag, nil))
    end)
end)
