// Entry point. The main window shows the tabs, and the small window opened
// as index.html#quick-send shows only the Quick send form.

import "./style.css";
import { AppContext } from "./context";
import { startApp } from "./views/app";
import { startQuickSend } from "./views/quickSend";

const root = document.getElementById("app");
if (root === null) {
  throw new Error("index.html has no element with id 'app'");
}

if (window.location.hash === "#quick-send") {
  document.body.classList.add("quick-send-window");
  void startQuickSend(root);
} else {
  void startApp(root, new AppContext());
}
