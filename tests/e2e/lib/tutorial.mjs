// The tutorial's config blocks shared by several test files, and the environment that points
// its providers at llmux-mock (OPENAI_API_BASE / ANTHROPIC_API_BASE, as a LiteLLM user would).

export const tutorialEnv = (mock) => ({
  OPENAI_API_KEY: 'sk-your-key',
  ANTHROPIC_API_KEY: 'sk-ant-your-key',
  OPENAI_API_BASE: `${mock.url}/v1`,
  ANTHROPIC_API_BASE: mock.url,
});

// ## Cost Tracking, with the models of the Configuration File section. `databaseUrl` replaces the
// block's sqlite:///costs.db; `general` adds lines under general_settings; `tail` is appended.
export function costTrackingConfig({ databaseUrl = 'sqlite:///costs.db', general = '', tail = '' } = {}) {
  return `model_list:
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: gpt-3.5-turbo
      api_key: os.environ/OPENAI_API_KEY
  - model_name: claude-3
    litellm_params:
      model: claude-3-opus-20240229
      api_key: os.environ/ANTHROPIC_API_KEY

# config.yaml
general_settings:
  database_url: "${databaseUrl}"
${general}
user_config:
  - user_id: "team_a"
    user_email: "team_a@example.com"
    user_role: "app_user"
    max_budget: 200.0  # Monthly budget
    models: ["gpt-4", "gpt-3.5-turbo", "claude-3"]
    budget_duration: "30d"  # Reset every 30 days

# Enable cost tracking endpoints
litellm_settings:
  cost_tracking: true
${tail}`;
}
