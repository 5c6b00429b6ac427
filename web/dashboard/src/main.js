// ringmq's dashboard: a small single-page app over the admin API (/api/v1, see
// docs or /api/v1/openapi.json). Hash routes (#/clients...) so that any path the HTTP server
// maps to index.html works, and a reload keeps the page.
import './style.css';
import { api, token, setUnauthorizedHandler } from './api.js';
import { h } from './dom.js';
import { startPolling, stopPolling } from './stats.js';
import { overview } from './views/overview.js';
import { clients } from './views/clients.js';
import { sessions } from './views/sessions.js';
import { subscriptions } from './views/subscriptions.js';
import { retained } from './views/retained.js';
import { users } from './views/users.js';
import { acl } from './views/acl.js';
import { topics } from './views/topics.js';

const app = document.getElementById('app');
const routes = [
  ['overview', 'Overview', overview],
  ['clients', 'Clients', clients],
  ['sessions', 'Sessions', sessions],
  ['subscriptions', 'Subscriptions', subscriptions],
  ['retained', 'Retained', retained],
  ['topics', 'Topic statistics', topics],
  ['users', 'Users', users],
  ['acl', 'ACL', acl],
];
let current = null; // {destroy}

function route() {
  return (location.hash.replace(/^#\/?/, '').split('?')[0]) || 'overview';
}

function loginPage(message) {
  stopPolling();
  current?.destroy?.();
  current = null;
  const err = h('p', { class: 'error', role: 'alert', testid: 'login-error' }, message || '');
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, testid: 'username' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, testid: 'password' });
  const button = h('button', { type: 'submit', testid: 'login' }, 'Log in');
  const form = h('form', {
    class: 'card login',
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      err.textContent = '';
      try {
        const r = await api.login(user.value, pass.value);
        token.set(r.token);
        if (route() === 'login') location.hash = '#/overview';
        render();
      } catch (ex) {
        err.textContent = ex.message;
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h1', {}, h('span', { class: 'logo' }, 'ringmq'), ' dashboard'),
  h('label', {}, 'User name', user),
  h('label', {}, 'Password', pass),
  button, err,
  h('p', { class: 'hint' }, 'No admin user yet? Run ', h('code', {}, 'ringmq admin add-user NAME'), ' on the broker host.'));
  app.replaceChildren(h('div', { class: 'login-wrap' }, form));
  user.focus();
}

function shell(active) {
  const nav = h('nav', {},
    h('div', { class: 'brand' }, h('span', { class: 'logo' }, 'ringmq')),
    routes.map(([id, title]) => h('a', { href: `#/${id}`, class: id === active ? 'active' : '', testid: `nav-${id}` }, title)),
    h('div', { class: 'spacer' }),
    h('button', {
      class: 'ghost logout',
      testid: 'logout',
      onclick: () => { token.clear(); loginPage('Logged out.'); },
    }, 'Log out'));
  const main = h('main', {});
  app.replaceChildren(h('div', { class: 'layout' }, nav, main));
  return main;
}

function render() {
  if (!token.get()) return loginPage();
  const id = route();
  const entry = routes.find(([r]) => r === id) || routes[0];
  current?.destroy?.();
  const main = shell(entry[0]);
  startPolling();
  main.append(h('h1', { class: 'page-title' }, entry[1]));
  current = entry[2](main) || null;
}

setUnauthorizedHandler((msg) => loginPage(`Session ended: ${msg}`));
window.addEventListener('hashchange', render);
render();
