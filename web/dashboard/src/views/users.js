// MQTT users of the broker's password_file: list, add, change password, delete.
import { api } from '../api.js';
import { h, table } from '../dom.js';

export function users(main) {
  const box = h('div', {});
  const msg = h('p', { class: 'status-line', role: 'status', testid: 'users-status' });
  const name = h('input', { placeholder: 'User name', required: true, testid: 'new-user' });
  const pass = h('input', { type: 'password', placeholder: 'Password', required: true, autocomplete: 'new-password', testid: 'new-password' });
  const say = (t) => { msg.textContent = t; };
  async function load() {
    try {
      const r = await api.users();
      box.replaceChildren(table([
        { title: 'User name', cell: (u) => h('code', {}, u.username) },
        { title: 'Change password', cell: (u) => {
          const pw = h('input', { type: 'password', placeholder: 'New password', autocomplete: 'new-password', class: 'inline' });
          return h('form', { class: 'inline-form', onsubmit: async (e) => {
            e.preventDefault();
            if (!pw.value) return;
            try { await api.setPassword(u.username, pw.value); say(`Password of ${u.username} changed.`); pw.value = ''; } catch (ex) { say(ex.message); }
          } }, pw, h('button', { class: 'small', type: 'submit' }, 'Set'));
        } },
        { title: '', cell: (u) => h('button', { class: 'danger small', testid: 'delete-user', onclick: async () => {
          try { await api.deleteUser(u.username); say(`Deleted ${u.username}.`); } catch (ex) { say(ex.message); }
          load();
        } }, 'Delete') },
      ], (r.data || []).map((u) => ({ ...u, __key: u.username })), { empty: 'No user.', testid: 'users' }));
    } catch (e) {
      say(e.message);
    }
  }
  const form = h('form', { class: 'toolbar', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.addUser(name.value, pass.value);
      say(`Added ${name.value}.`);
      name.value = '';
      pass.value = '';
    } catch (ex) {
      say(ex.message);
    }
    load();
  } }, name, pass, h('button', { type: 'submit', testid: 'add-user' }, 'Add user'));
  main.append(h('p', { class: 'muted' }, 'MQTT users of the broker\'s password_file (argon2id). Changes are written to the file and take effect at once.'),
    form, msg, h('section', { class: 'card' }, box));
  load();
  return null;
}
