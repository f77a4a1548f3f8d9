const cells = JSON.parse(document.getElementById('cells').textContent);
const panel = document.getElementById('details');
function show(key) {
  const cell = cells[key];
  panel.replaceChildren();
  for (const [label, value] of cell) {
    const row = document.createElement('div');
    const name = document.createElement('b');
    name.textContent = label + ': ';
    const link = label === 'logs' && value.startsWith('https://');
    const text = document.createElement(link ? 'a' : label === 'log tail' || label === 'traceback' ? 'pre' : 'span');
    text.textContent = link ? 'the cell-logs artifact of this workflow run' : value;
    if (link) text.href = value;
    row.append(name, text);
    panel.append(row);
  }
  panel.hidden = false;
}
document.querySelectorAll('td[data-key]').forEach(td => td.addEventListener('click', () => show(td.dataset.key)));
function filter() {
  const status = document.getElementById('status').value;
  const model = document.getElementById('model').value.toLowerCase();
  document.querySelectorAll('#matrix tbody tr').forEach(tr => {
    const byModel = tr.dataset.model.toLowerCase().includes(model);
    const cellsShown = [...tr.querySelectorAll('td[data-status]')].map(td => {
      const show = !status || td.dataset.status === status;
      td.classList.toggle('dim', !show);
      return show;
    });
    tr.hidden = !byModel || !cellsShown.some(Boolean);
  });
}
document.getElementById('status').addEventListener('change', filter);
document.getElementById('model').addEventListener('input', filter);
const stretchPanel = document.getElementById('stretch');
function showStretch(rect) {
  stretchPanel.textContent = rect.querySelector('title').textContent;
  stretchPanel.hidden = false;
}
document.querySelectorAll('#release-line .stretch').forEach(rect => {
  rect.addEventListener('focus', () => showStretch(rect));
  rect.addEventListener('click', () => showStretch(rect));
});
