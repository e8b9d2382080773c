import { apiKey, setApiKey } from './api.js';
import { ChatView } from './chat.js';
import { DashboardView } from './dashboard.js';

/** The page's frame: the API key (kept in localStorage), and the two views, chat and dashboard, switched by tabs. */
const chat = new ChatView();
const dashboard = new DashboardView();
const keyInput = document.getElementById('api-key') as HTMLInputElement;
keyInput.value = apiKey();
keyInput.addEventListener('change', () => {
  setApiKey(keyInput.value.trim());
  void chat.loadModels();
});

function show(view: 'chat' | 'dashboard'): void {
  for (const v of ['chat', 'dashboard']) {
    (document.getElementById(`view-${v}`) as HTMLElement).hidden = v !== view;
    document.getElementById(`tab-${v}`)?.classList.toggle('active', v === view);
  }
  if (view === 'dashboard') dashboard.start();
  else dashboard.stop();
  location.hash = view;
}

document.getElementById('tab-chat')?.addEventListener('click', () => show('chat'));
document.getElementById('tab-dashboard')?.addEventListener('click', () => show('dashboard'));
show(location.hash === '#dashboard' ? 'dashboard' : 'chat');
void chat.loadModels();
