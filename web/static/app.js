// The virtual AWTRIX page: wires the device (device.js), the display
// (display.js) and the DOM together, keeps the token, and exposes the test
// hooks on window.awtrixDevice.

import { VirtualClock } from './clock.js';
import { Device } from './device.js';
import { Display } from './display.js';
import { checkToken, newToken } from './wire.js';

const TOKEN_KEY = 'awtrix-relay-token';

const $ = (id) => document.getElementById(id);

/** loadToken returns the stored token, or makes and stores one on first visit. */
function loadToken() {
  try {
    const t = localStorage.getItem(TOKEN_KEY);
    if (t && !checkToken(t)) return t;
  } catch {
    // Storage blocked: the token lives as long as the page.
  }
  const t = newToken();
  saveToken(t);
  return t;
}

function saveToken(t) {
  try {
    localStorage.setItem(TOKEN_KEY, t);
  } catch {
    // See loadToken.
  }
}

// devCA is true when the relay runs on its development CA (it then publishes
// certificate hashes): curl must be told to trust relay-state/ca.pem.
let devCA = false;

/** curlCommand is a webhook call that works as pasted; the token is base64url, safe in quotes. */
function curlCommand(token) {
  const ca = devCA ? '--cacert relay-state/ca.pem ' : '';
  return `curl ${ca}-H "Authorization: Bearer ${token}" -d '{"text":"Hello","color":[255,0,0]}' '${location.origin}/cloud?mode=notify'`;
}

function showToken(token) {
  $('token').textContent = token;
  $('curl').textContent = curlCommand(token);
}

function notice(text) {
  $('notice').textContent = text;
}

// The clock's state is drawn over what modes render: display paints
// clock.compose(frame), and the clock's screen read is what display shows.
const clock = new VirtualClock({ screen: () => display.shown });
const display = new Display($('matrix'), (f) => clock.compose(f));
let soundTimer = 0;
let wakeTimer = 0;

/** cue shows, for a moment, what the clock was asked to play: it has no speaker. */
function cue(sound) {
  const el = $('sound');
  el.textContent = `♪ ${sound.kind}: ${sound.what}`;
  el.hidden = false;
  clearTimeout(soundTimer);
  soundTimer = setTimeout(() => {
    el.hidden = true;
  }, 3000);
}
let messages = 0; // MESSAGEs answered, whatever the status
let lastReply = ''; // JSON of the last REPLY body
let rotating = null; // the pending rotation's promise

const device = new Device({
  token: loadToken(),
  configURL: '/device-config',
  connectURL: `${location.origin}/connect`,
  onState(state, text) {
    const el = $('status');
    el.textContent = text;
    el.dataset.state = state;
    $('rotate').disabled = rotating !== null || state === 'connecting';
  },
  onMessage({ mode, query, body }) {
    const sound = clock.sound;
    const { status, body: reply, show } = clock.handle(mode, body, query);
    if (show?.kind === 'frame') display.showFrame(show.frame);
    else if (show?.kind === 'text') display.showText(show.text, show.color);
    else if (show?.kind === 'clear') display.clear();
    else display.repaint(); // indicators, mood light, power, sleep
    if (clock.sound !== sound) cue(clock.sound);
    if (mode === 'sleep' && status === 200) {
      clearTimeout(wakeTimer);
      wakeTimer = setTimeout(() => display.repaint(), Math.max(0, clock.sleepUntil - Date.now()) + 10);
    }
    return { status, body: reply };
  },
  onReply(status, json) {
    // Counted before the REPLY is written, so a test that has its webhook
    // response sees these already updated.
    messages++;
    lastReply = json;
    $('last-reply').textContent = `${status} ${json}`;
  },
});

/** rotate regenerates the token: ROTATE online, or log in with it next when offline. */
function rotate() {
  if (rotating) return Promise.reject(new Error('a rotation is already in progress'));
  const token = newToken();
  $('rotate').disabled = true;
  notice('rotating…');
  rotating = device
    .rotate(token)
    .then(
      () => {
        saveToken(token);
        showToken(token);
        notice('New token active: the old one no longer reaches this device.');
        return token;
      },
      (err) => {
        notice(`Rotation failed: ${err.message}. Keeping the old token.`);
        throw err;
      },
    )
    .finally(() => {
      rotating = null;
      $('rotate').disabled = device.state === 'connecting';
    });
  return rotating;
}

$('rotate').addEventListener('click', () => {
  rotate().catch(() => {}); // the notice shows why
});

$('copy').addEventListener('click', async () => {
  const button = $('copy');
  try {
    await navigator.clipboard.writeText($('curl').textContent);
    button.textContent = 'Copied';
  } catch {
    // No clipboard permission: select the text for Ctrl+C instead.
    getSelection().selectAllChildren($('curl'));
    button.textContent = 'Press Ctrl+C';
  }
  setTimeout(() => {
    button.textContent = 'Copy';
  }, 1500);
});

// Test hooks: the browser test reads these.
window.awtrixDevice = {
  get state() {
    return device.state;
  },
  get token() {
    return device.token;
  },
  get transport() {
    return device.transport;
  },
  get messages() {
    return messages;
  },
  get lastReply() {
    return lastReply;
  },
  pixel: (x, y) => display.pixel(x, y),
  get sound() {
    return $('sound').hidden ? '' : $('sound').textContent;
  },
  rotate,
};

showToken(device.token);
fetch('/device-config', { cache: 'no-store' })
  .then((res) => res.json())
  .then((c) => {
    devCA = (c.certHashes || []).length > 0;
    showToken(device.token);
  })
  .catch(() => {
    // The device's own connect reports relay trouble; the command stays plain.
  });
device.start();
