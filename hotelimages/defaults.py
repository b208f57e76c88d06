"""Every default of hotelimages' own settings, each with a one-line note.

Scrapy's own settings that this project changes live in ``settings.py``; the
values here are read through ``hotelimages.config.HotelsConfig`` only.
"""

import socket

#: The shared Redis (``redis://:password@host:6379/0``, ``rediss://`` for TLS). Used when none of
#: REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_DB is set; otherwise they are read as scrapy-redis
#: reads them (REDIS_URL wins; see ``redisconn``).
REDIS_URL = "redis://127.0.0.1:6379/0"
#: Extra keyword arguments for the Redis client (timeouts, TLS options), over scrapy-redis's own;
#: a REDIS_PARAMS setting adds to and overrides these.
REDIS_PARAMS: dict = {"socket_timeout": 30, "socket_connect_timeout": 10, "health_check_interval": 30}
#: Prefix of every Redis key of the project but the input list.
HOTELS_KEY_PREFIX = "hotels"
#: The Redis list that hotel IDs (or JSON records) are pushed to.
HOTELS_REDIS_KEY = "hotels:start_ids"
#: Template of a hotel's photo listing URL; ``{hotel_id}`` is URL-quoted when filled in.
HOTEL_LISTING_URL = ""
#: A node refuses to start without HOTEL_LISTING_URL; False for queues of inline JSON records only
#: (a bare hotel ID is then given back unfailed: it needs a listing URL).
HOTELS_REQUIRE_LISTING_URL = True
#: This node's name, written into every manifest (default: the host name).
NODE_ID = ""
#: Regular expression a hotel ID must match whole.
HOTELS_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
#: Regular expression an image ID must match whole.
HOTELS_IMAGE_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
#: The known image categories; anything else is stored under HOTELS_OTHER_CATEGORY.
HOTELS_CATEGORIES = ["cover", "exterior", "interior", "reviews"]
#: Category for images whose category is missing or unknown.
HOTELS_OTHER_CATEGORY = "other"
#: How many hex digits of sha1(hotel_id) become folder levels.
HOTELS_SHARD_DEPTH = 4
#: How many hotel IDs one claim takes from Redis at most.
HOTELS_CLAIM_BATCH = 16
#: How many hotels one process works on at once (claimed, not yet acknowledged).
HOTELS_MAX_IN_FLIGHT = 48
#: Seconds a claim stays valid without renewal; expired claims go back to the queue.
HOTELS_LEASE_SECONDS = 120
#: Seconds between lease renewals (and expired-lease sweeps) of a running node.
HOTELS_HEARTBEAT_SECONDS = 15
#: Seconds to wait for more work once the queue is empty and no claim is held anywhere; 0 = never close.
HOTELS_IDLE_CLOSE_SECONDS = 10
#: Seconds a stopping node (SIGTERM/SIGINT) waits for its hotels in flight before giving them back.
HOTELS_STOP_GRACE_SECONDS = 60
#: Seconds between polls of an empty queue.
HOTELS_POLL_SECONDS = 0.5
#: Redo hotels that already have a manifest in Redis.
HOTELS_FORCE = False
#: Listing pages followed per hotel at most.
HOTELS_MAX_LISTING_PAGES = 100
#: Images per hotel at most; a longer listing is cut there and the hotel recorded as partial.
HOTELS_MAX_IMAGES = 5000
#: Image formats (Pillow names) that are stored; others are refused.
HOTELS_ALLOWED_FORMATS = ["JPEG", "PNG", "WEBP", "GIF"]
#: Fully decode every image (catches any corruption, costs milliseconds per image).
HOTELS_FULL_DECODE = False
#: Largest image in pixels; larger ones are refused as decompression bombs.
HOTELS_MAX_IMAGE_PIXELS = 89_478_485
#: If not empty, only images on these hosts (or their subdomains) are fetched.
HOTELS_IMAGE_HOSTS: list = []
#: Threads that write and hash image files off the reactor; 0 writes on the reactor thread.
HOTELS_WRITE_THREADS = 4
#: How images are downloaded: "direct" (hotelimages.fetcher, on libcurl through pycurl, with its
#: own kept-alive connections; concurrency, retries, redirects, timeouts and size limits follow
#: Scrapy's settings) or "scrapy"
#: (Scrapy's downloader and its middlewares; slower; used anyway with DOWNLOAD_DELAY or AutoThrottle;
#: needed for downloader middlewares of your own to see image requests).
HOTELS_IMAGE_FETCHER = "direct"
#: Verify image hosts' TLS certificates in the direct fetcher (off, like Scrapy's default; see README).
HOTELS_TLS_VERIFY = False
#: Speak HTTP/2 with HTTPS image hosts that offer it (ALPN) in the direct fetcher; HTTP/1.1 otherwise.
HOTELS_HTTP2 = False
#: Seconds the direct fetcher keeps resolved host names (libcurl's DNS cache); 0 = resolve every time.
HOTELS_DNS_CACHE_SECONDS = 60
#: Seconds an idle kept-alive connection of the direct fetcher stays open before it is closed.
HOTELS_CONNECTION_IDLE_SECONDS = 30.0
#: Python's first garbage-collector threshold once the spider is open (Python's default is 700;
#: 0 leaves it). A node allocates many short-lived objects per image; collecting less often and
#: freezing the start-up objects out of the collector's scans saved 6-8% of user CPU.
HOTELS_GC_THRESHOLD = 50_000
#: Free space (MiB) on the store's disk under which the start-up checks warn.
HOTELS_STORE_MIN_FREE_MB = 1024
#: An unknown setting or environment variable that looks like ours: "error" stops the node, "warn" logs it.
HOTELS_UNKNOWN_SETTINGS = "error"
#: fsync each file before renaming it into place (durable against power loss, slower).
HOTELS_FSYNC = False
#: Seconds between progress lines and heartbeats; 0 disables the progress extension.
HOTELS_PROGRESS_INTERVAL = 30.0
#: Samples kept per process in its history list (2880 x 30 s = 24 hours).
HOTELS_PROGRESS_HISTORY_LENGTH = 2880
#: Seconds a process's history outlives its last sample (so status can still draw a finished run).
HOTELS_PROGRESS_HISTORY_TTL = 7 * 24 * 3600
#: Keep each hotel's full manifest in Redis too (zlib-compressed, base64, as the 11th element of
#: its ``hotels:manifests`` record), for small jobs whose tools want manifests from Redis alone.
#: Off: Redis holds a compact record of ~270 bytes per done hotel whatever its photo count, and
#: the full manifest is in ``manifest.json`` on the node (~2.5 KB more per 120-photo hotel when on).
HOTELS_REDIS_FULL_MANIFESTS = False
#: What the circuit breaker does once it trips (see README, "A node that cannot work"): "wait"
#: (stop claiming, give back, retry after HOTELS_BREAKER_WAIT_SECONDS, doubling) or "exit"
#: (give back and exit with status 3). Configuration mistakes and store errors always exit.
HOTELS_BREAKER_MODE = "wait"
#: Node-local failures in a row (listing host unreachable, no listing URL...) that trip the breaker; 0 = never.
HOTELS_BREAKER_THRESHOLD = 10
#: Hotels in a row failed with one reason (timeout, 403, 429, 5xx) while the fleet succeeds that trip it; 0 = off.
HOTELS_BREAKER_SAME_FAILURES = 50
#: First wait (seconds) of a tripped breaker in "wait" mode; doubled each time it trips again.
HOTELS_BREAKER_WAIT_SECONDS = 30.0
#: Longest wait (seconds) of a tripped breaker in "wait" mode.
HOTELS_BREAKER_MAX_WAIT_SECONDS = 600.0
#: Attempts to rename a written file into place when the OS says "permission denied" (Windows:
#: an antivirus or indexer holds the file), with a short doubling pause between them.
HOTELS_RENAME_ATTEMPTS = 5

# --- Politeness: fleet-wide host budgets, back-off, per-node caps, pause (issue 15) -----------------
#: Fleet-wide budgets per host: ``"img.example.com=300/s,64; api.example.com=50/s"`` (requests per
#: second, optionally requests in flight; host names or fnmatch patterns). Hosts not listed: unlimited.
HOTELS_HOST_BUDGETS = ""
#: How far ahead (seconds) one grant of a host's budget reaches; larger = fewer Redis calls, coarser sharing.
HOTELS_BUDGET_GRANT_SECONDS = 1.0
#: Additive increase after a back-off: this fraction of the budget per second of good answers.
HOTELS_BUDGET_INCREASE = 0.05
#: Multiplicative decrease on a 429/503 (at most once a second): the fleet rate is multiplied by this.
HOTELS_BUDGET_DECREASE = 0.5
#: 429/503 answers from a budgeted host that one request is retried past (without using up RETRY_TIMES).
HOTELS_BUDGET_MAX_REFUSALS = 20
#: This node's bandwidth cap for image downloads in bytes/s (``2MB/s``, ``500KB/s``, a number); 0 = none.
HOTELS_MAX_BYTES_PER_SEC = 0
#: When this node works, in its local time (``"Mon-Fri 19:00-07:00; Sat-Sun all"``, see activehours.py);
#: empty = always. A clause may carry its own cap: ``"Mon-Fri 07:00-19:00 200KB/s; Mon-Fri 19:00-07:00"``.
HOTELS_ACTIVE_HOURS = ""
#: Seconds between a node's checks of the central pause flag and of its schedule.
HOTELS_CONTROL_SECONDS = 2.0


def default_node_id() -> str:
    """The node name used when NODE_ID is not set."""
    return socket.gethostname() or "node"
