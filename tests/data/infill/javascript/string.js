const greeting = `Hello, ${user.name}! Today is <CURSOR>`;
