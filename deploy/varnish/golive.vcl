vcl 4.1;
# golive edge cache: Varnish (7.1) in front of a golive origin's LL-HLS output.
#
# A template: replace {{ORIGIN_HOST}} and {{ORIGIN_PORT}} (a golive node's HTTP address),
# or let render.sh beside it do that for one node or several (see "Origins" below):
#
#   sh render.sh 10.0.0.5:8080 10.0.0.6:8080 < golive.vcl > /etc/varnish/golive.vcl
#
# Run varnishd with ESI allowed on text that is not XML (playlists start with #EXTM3U):
#
#   varnishd -a :6081 -f /etc/varnish/golive.vcl -s malloc,1g \
#            -p feature=+esi_disable_xml_check
#
# What the origin does and the edge relies on (as for deploy/nginx/edge.conf):
#   * Media (init-*.mp4, seg-*.m4s, part-*.m4s) is immutable, sent with a long max-age.
#   * Playlists carry short max-ages; answers to blocking reloads (_HLS_msn/_HLS_part)
#     are held by the origin until the part exists and may be kept a few target
#     durations, since their URL names the part. Errors are no-cache (404: one second).
# Cache-Control decides what is kept and for how long; this file adds no policy of its own
# beyond refusing to serve a playlist stale.
#
# Request collapsing is Varnish's waiting list: of many requests for an object being
# fetched, one goes to the origin and the rest park on the busy object; they are woken
# the moment its headers arrive and stream the body as it comes. Unlike nginx's cache
# lock (woken on a 500 ms timer) this adds no delay to a held LL-HLS request.
#
# Signed playback (?token=JWT): the token is not part of any media or playlist cache key,
# one object serves every viewer. Every /live/ request is checked first: it is turned into
# a request for the origin's /live/PLAYBACK_ID/access?token=... (cached per playback id,
# token and referring host, and without a token per viewer address and user agent, for as
# long as the origin says, never past the token's expiry);
# a 204 restarts the request as it came, anything else (403 with the reason) is the answer.
# Playlists are cached once with an ESI include where each URI's token goes (asked for
# with X-Golive-Edge: esi); delivering one writes the viewer's own token in.

import std;
import directors;

# Origins. Any golive node of a cluster answers for any playback id (the node holding a
# broadcast serves it, the others forward to it), so the edge needs no placement: it
# asks the first node in the list below that answers its /healthz (a fallback director;
# the waiting list has already made each object one fetch, whichever node it goes to). A
# node that fails two of three probes a second apart is skipped until it answers again.
# More nodes: a backend like `golive` for each (its own name, host and port, the same
# probe), then one `origins.add_backend(NAME);` each in vcl_init, in the order to try;
# render.sh writes them from a list of HOST:PORT.
probe golive_alive {
    .url = "/healthz";
    .interval = 1s;
    .timeout = 1s;
    .window = 3;
    .threshold = 2;
    .initial = 2;  # healthy from the start, not after the first probes
}

backend golive {
    .host = "{{ORIGIN_HOST}}";
    .port = "{{ORIGIN_PORT}}";
    .probe = golive_alive;
    .connect_timeout = 2s;
    # The origin holds a blocking reload (or a preload-hinted part) up to 3 target
    # durations before it answers.
    .first_byte_timeout = 40s;
    .between_bytes_timeout = 10s;
}

sub vcl_init {
    new origins = directors.fallback();
    origins.add_backend(golive);
}

sub vcl_recv {
    set req.backend_hint = origins.backend();
    if (req.esi_level > 0) {
        # The only include the origin writes: the viewer's token, from the top request.
        if (req.url == "/_golive/token") {
            return (synth(750));
        }
        return (synth(404));
    }
    if (req.restarts == 0) {
        # Set by this file only; whatever a client sends under these names is dropped.
        unset req.http.X-Golive-Phase;
        unset req.http.X-Golive-Url;
        unset req.http.X-Golive-Token;
        unset req.http.X-Golive-Edge;
    }
    if (req.http.Upgrade ~ "(?i)^websocket$") {
        # Chat (/chat/): the WebSocket goes to the node as it is (see vcl_pipe), with the
        # viewer's address in X-Forwarded-For (list the edge in the node's
        # trusted_proxies: chat bans and limits are per address). A piped connection is
        # closed after pipe_timeout (60 s) without a byte; the node pings every 20 s.
        return (pipe);
    }
    if (req.url ~ "^/live/") {
        call golive_live;
    }
    # Anything else (pages, API, VOD): Varnish's built-in rules, which pass requests
    # with cookies or Authorization and cache the rest as the origin's headers say.
}

sub vcl_pipe {
    # Varnish pipes a request with "Connection: close" of its own; a WebSocket's upgrade
    # must reach the node.
    if (req.http.Upgrade) {
        set bereq.http.Upgrade = req.http.Upgrade;
        set bereq.http.Connection = req.http.Connection;
    }
}

sub golive_live {
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);  # OPTIONS preflights: the origin answers with a day-long max-age
    }
    unset req.http.Cookie;  # the origin reads none below /live/
    if (req.restarts == 0) {
        if (req.url !~ "^/live/[A-Za-z0-9]{1,64}(\.m3u8|/)") {
            return (hash);  # not a playback URL: the origin's 404, cached a second
        }
        # A token is a JWT: base64url and dots (percent-escapes allowed); the value read
        # stops at anything else, which the origin then refuses.
        set req.http.X-Golive-Token = "";
        if (req.url ~ "[?&]token=") {
            set req.http.X-Golive-Token =
                regsub(req.url, "^[^?]*\?(?:[^#]*&)?token=([A-Za-z0-9._~%-]*).*$", "\1");
        }
        set req.http.X-Golive-Url = req.url;
        set req.http.X-Golive-Phase = "access";
        set req.url = regsub(req.url, "^/live/([A-Za-z0-9]{1,64}).*$", "/live/\1/access")
            + "?token=" + req.http.X-Golive-Token;
        return (hash);
    }
    if (req.http.X-Golive-Phase == "media") {
        set req.http.X-Golive-Edge = "esi";
        return (hash);
    }
    return (synth(500, "golive edge: unexpected restart"));
}

sub vcl_hash {
    if (req.http.X-Golive-Phase == "access") {
        # One answer per playback id, token and referring page host (referrer rules are
        # the origin's to check, per host rather than per page).
        hash_data(req.url);
        hash_data(regsub(req.http.Referer,
            "^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/?#]+).*$", "\1"));
        if (req.http.X-Golive-Token == "") {
            # A viewer without a token is its address and user agent to an access hook
            # (which hears the address in X-Forwarded-For, set by Varnish): its own
            # answer, not the first viewer's.
            hash_data(client.ip);
            hash_data(req.http.User-Agent);
        }
        return (lookup);
    }
    if (req.http.X-Golive-Phase == "media") {
        # The path and the LL-HLS delivery directives, which name different playlists;
        # not the token.
        hash_data(regsub(req.url, "\?.*$", ""));
        if (req.url ~ "[?&]_HLS_msn=") {
            hash_data("m=" + regsub(req.url, "^.*[?&]_HLS_msn=([^&]*).*$", "\1"));
        }
        if (req.url ~ "[?&]_HLS_part=") {
            hash_data("p=" + regsub(req.url, "^.*[?&]_HLS_part=([^&]*).*$", "\1"));
        }
        if (req.url ~ "[?&]_HLS_skip=") {
            hash_data("s=" + regsub(req.url, "^.*[?&]_HLS_skip=([^&]*).*$", "\1"));
        }
        return (lookup);
    }
}

sub vcl_backend_fetch {
    unset bereq.http.X-Golive-Phase;
    unset bereq.http.X-Golive-Url;
    unset bereq.http.X-Golive-Token;
    if (bereq.retries > 0) {
        call golive_next_origin;
    }
    unset bereq.http.X-Golive-Failed;
}

sub vcl_backend_error {
    # A node that refused or dropped the connection (it died, or is restarting) stays the
    # director's choice until its probes fail, about 2 s: the next node in the list is
    # asked at once instead, each at most once (render.sh sets the count: nodes - 1).
    if (bereq.retries < 0 && (bereq.method == "GET" || bereq.method == "HEAD")) {
        set bereq.http.X-Golive-Failed = beresp.backend;
        return (retry);
    }
}

sub golive_next_origin {
    # The node after the one whose fetch failed (X-Golive-Failed), in the list's order,
    # the first after the last; render.sh writes one line per node.
    set bereq.backend = golive;
}

sub vcl_backend_response {
    if (bereq.url ~ "^/live/[A-Za-z0-9]{1,64}/access\?") {
        set beresp.grace = 0s;
        if (beresp.status == 403) {
            # Varnish keeps no 403 by itself; the origin asks for a couple of seconds.
            set beresp.ttl = std.duration(
                regsub(beresp.http.Cache-Control, "^.*max-age=([0-9]+).*$", "\1s"), 2s);
        }
        return (deliver);
    }
    if (bereq.url ~ "^/live/") {
        if (beresp.http.Cache-Control ~ "no-cache" || beresp.status >= 500) {
            # Not an answer to keep, and not one to pass every later request by for two
            # minutes (the built-in hit-for-miss): the next request asks again.
            set beresp.ttl = 1s;
            set beresp.grace = 0s;
            set beresp.uncacheable = true;
            return (deliver);
        }
        if (bereq.url ~ "\.m3u8(\?|$)") {
            # Never served stale: a stale copy starts a player far behind live.
            set beresp.grace = 0s;
            set beresp.keep = 0s;
            if (bereq.url ~ "[?&]token=" && beresp.http.Content-Type ~ "mpegurl") {
                # The origin wrote token includes (see the top) only for a request with a
                # token; without any, the copy is sent as it is (with a Content-Length).
                set beresp.do_esi = true;
            }
        } else {
            # Media never changes under its URL: an old copy is as good as a new one.
            set beresp.grace = 10s;
        }
        return (deliver);
    }
}

sub vcl_deliver {
    if (req.http.X-Golive-Phase == "access") {
        if (resp.status == 204) {
            set req.url = req.http.X-Golive-Url;
            set req.http.X-Golive-Phase = "media";
            return (restart);
        }
        # The origin's refusal (403 and the reason as the body) is the viewer's answer.
        set resp.http.Cache-Control = "no-cache";
        set resp.http.Access-Control-Allow-Origin = "*";
        unset resp.http.X-Golive-Refusal;
        return (deliver);
    }
    if (req.esi_level == 0) {
        if (obj.hits > 0) {
            set resp.http.X-Cache = "HIT";
        } else {
            set resp.http.X-Cache = "MISS";
        }
    }
}

sub vcl_synth {
    if (resp.status == 750) {
        set resp.status = 200;
        set resp.reason = "OK";
        set resp.http.Content-Type = "text/plain";
        if (req_top.url ~ "[?&]token=[A-Za-z0-9._~%-]") {
            synthetic("?token=" + regsub(req_top.url,
                "^[^?]*\?(?:[^#]*&)?token=([A-Za-z0-9._~%-]*).*$", "\1"));
        } else {
            synthetic("");
        }
        return (deliver);
    }
}
